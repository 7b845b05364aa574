/** `hexmesh edges`: who calls whom, with rps, success rate, p99 and the mTLS share. */
import { Command, Option } from 'commander';
import { PrometheusViews } from '../../control/metrics/prometheus-views.ts';
import type { ControlClient } from '../client/control-client.ts';
import { formatTable, runWithClient, UsageError } from '../client/command-support.ts';
import { STAT_SPLITS, type EdgesView } from '../../control/metrics/views.ts';
import { fmtMs, fmtPercent, fmtRps, showView, viewQuery, withViewOptions, type ViewOptions } from './stat.ts';

export async function loadEdges(client: ControlClient, opts: ViewOptions): Promise<EdgesView> {
  const q = { windowMs: opts.window, namespace: opts.namespace };
  if (opts.prometheus) {
    if (opts.by) throw new UsageError("--by needs the control plane's metrics, not --prometheus");
    return new PrometheusViews(opts.prometheus).edges(q);
  }
  return (
    await client.request<EdgesView>('GET', '/v1/stats/edges', { query: viewQuery(opts, { by: opts.by }) })
  ).body;
}

/** The edges view as a table; `wide` adds the request count. */
export function edgesTable(view: EdgesView, wide = false): string {
  const by = view.by;
  const more = wide ? ['REQUESTS'] : [];
  if (by)
    return formatTable(
      ['NAMESPACE', 'SRC', 'DST', by.toUpperCase(), 'SUCCESS', 'RPS', 'P99', 'MTLS', ...more],
      view.edges.flatMap((e) =>
        (e.split ?? []).map((p) => [
          e.namespace,
          e.src,
          e.dst,
          p.value || '-',
          fmtPercent(p.successRate),
          fmtRps(p.rps),
          fmtMs(p.p99Ms),
          fmtPercent(e.tlsPercent, false),
          ...(wide ? [String(p.requests)] : []),
        ]),
      ),
    );
  return formatTable(
    ['NAMESPACE', 'SRC', 'DST', 'SUCCESS', 'RPS', 'P99', 'MTLS', ...more],
    view.edges.map((e) => [
      e.namespace,
      e.src,
      e.dst,
      fmtPercent(e.successRate),
      fmtRps(e.rps),
      fmtMs(e.p99Ms),
      fmtPercent(e.tlsPercent, false),
      ...(wide ? [String(e.requests)] : []),
    ]),
  );
}

export function edgesCommand(): Command {
  return withViewOptions(
    new Command('edges').description('who calls whom: rps, success rate, p99 and mTLS share per src → dst'),
  )
    .addOption(
      new Option(
        '--by <split>',
        "one row per version, revision, instance or Kubernetes Deployment of each edge's destination",
      ).choices(STAT_SPLITS),
    )
    .addHelpText(
      'after',
      `
Figures are the caller's side (its sidecar's outbound traffic); MTLS is the share the
destination's sidecars received over mTLS. With --by, the rows are the destination's
side instead, one per version (revision, instance, Deployment) that served the caller: during a
canary, how the caller's traffic lands on each version.`,
    )
    .action((opts: ViewOptions) =>
      runWithClient('edges', opts, async (client) => {
        await showView('hexmesh edges', opts, () => loadEdges(client, opts), edgesTable);
      }),
    );
}
