/** `hexmesh edges`: who calls whom, with rps, success rate, p99 and the mTLS share. */
import { Command } from 'commander';
import { PrometheusViews } from '../../control/metrics/prometheus-views.ts';
import type { ControlClient } from '../client/control-client.ts';
import { formatTable, runWithClient } from '../client/command-support.ts';
import type { EdgesView } from '../../control/metrics/views.ts';
import {
  fmtMs,
  fmtPercent,
  fmtRps,
  viewQuery,
  withProgress,
  withViewOptions,
  writeView,
  type ViewOptions,
} from './stat.ts';

export async function loadEdges(client: ControlClient, opts: ViewOptions): Promise<EdgesView> {
  const q = { windowMs: opts.window, namespace: opts.namespace };
  if (opts.prometheus) return new PrometheusViews(opts.prometheus).edges(q);
  return (await client.request<EdgesView>('GET', '/v1/stats/edges', { query: viewQuery(opts) })).body;
}

export function edgesTable(view: EdgesView): string {
  return formatTable(
    ['NAMESPACE', 'SRC', 'DST', 'SUCCESS', 'RPS', 'P99', 'MTLS'],
    view.edges.map((e) => [
      e.namespace,
      e.src,
      e.dst,
      fmtPercent(e.successRate),
      fmtRps(e.rps),
      fmtMs(e.p99Ms),
      fmtPercent(e.tlsPercent, false),
    ]),
  );
}

export function edgesCommand(): Command {
  return withViewOptions(
    new Command('edges').description('who calls whom: rps, success rate, p99 and mTLS share per src → dst'),
  )
    .addHelpText(
      'after',
      `
Figures are the caller's side (its sidecar's outbound traffic); MTLS is the share the
destination's sidecars received over mTLS.`,
    )
    .action((opts: ViewOptions) =>
      runWithClient('edges', opts, async (client) => {
        const view = await withProgress('querying', loadEdges(client, opts));
        writeView(opts, view, () => edgesTable(view));
      }),
    );
}
