/**
 * `hexmesh stat [SERVICE]`: per service success rate, rps, latency percentiles, instances
 * and mTLS share, from the control plane's embedded metrics (`/v1/stats/services`) or,
 * with `--prometheus URL`, from PromQL against a real Prometheus. Also the shared
 * plumbing of `hexmesh edges` and `hexmesh routes`: options, the progress line and cell
 * formats. Control-plane calls go through the CLI's ControlClient.
 */
import { Command, InvalidArgumentError } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import { PrometheusViews } from '../../control/metrics/prometheus-views.ts';
import type { LatencyMs, ServicesView } from '../../control/metrics/views.ts';
import type { ControlClient } from '../client/control-client.ts';
import {
  CliFailure,
  formatData,
  formatTable,
  outputOption,
  runWithClient,
  withControl,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';

export interface ViewOptions {
  control?: string;
  window: number;
  output: 'table' | 'json' | 'yaml';
  prometheus?: string;
  namespace?: string;
}

function windowMs(v: string): number {
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0)
    throw new InvalidArgumentError(`expected a duration like 1m or 30s, got ${JSON.stringify(v)}`);
  return ms;
}

/** Add the options every stats view takes. */
export function withViewOptions(cmd: Command): Command {
  return withControl(cmd)
    .option('-w, --window <duration>', 'time window of the figures', windowMs, 60_000)
    .addOption(outputOption(['table', 'json', 'yaml'], 'table'))
    .option('-n, --namespace <namespace>', 'only this namespace')
    .option('--prometheus <url>', 'answer from this Prometheus (PromQL) instead of the control plane');
}

/** Await `p`, showing `what…` on stderr after 1 s if stderr is a terminal. */
export async function withProgress<T>(what: string, p: Promise<T>): Promise<T> {
  const err = process.stderr;
  if (!err.isTTY) return p;
  let shown = false;
  const timer = setTimeout(() => {
    shown = true;
    err.write(`${what}…`);
  }, 1000);
  try {
    return await p;
  } finally {
    clearTimeout(timer);
    if (shown) err.write('\r\x1b[K');
  }
}

export const fmtPercent = (v: number | null, ratio = true): string =>
  v === null ? '-' : `${(ratio ? v * 100 : v).toFixed(2)}%`;
export const fmtRps = (v: number): string => `${v.toFixed(v >= 100 ? 0 : 2)}`;
export const fmtMs = (v: number | null): string =>
  v === null ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)}s` : `${v >= 10 ? Math.round(v) : v.toFixed(1)}ms`;
export const fmtLatency = (l: LatencyMs): string[] => [fmtMs(l.p50), fmtMs(l.p95), fmtMs(l.p99)];

export function writeOut(text: string): void {
  process.stdout.write(text);
}

/** A view as `-o` asks: its table, or the whole view as JSON or YAML. */
export function writeView(opts: ViewOptions, view: unknown, table: () => string): void {
  writeOut(opts.output === 'table' ? table() : formatData(view, opts.output));
}

/**
 * A view of one named service with nothing in it exits 4 (as `kubectl get pod NAME`): a
 * script asking about `reviews` must not read "no rows" as "all is well".
 */
export function requireRows(
  verb: string,
  service: string | undefined,
  rows: number,
  opts: ViewOptions,
): void {
  if (service === undefined || rows > 0) return;
  throw new CliFailure(
    `no figures for service "${service}" in the last ${opts.window / 1000}s (no such service, or no traffic in that window; hexmesh services lists the catalog)`,
    EXIT.NOT_FOUND,
  );
}

/** Query string of a control-plane view. */
export const viewQuery = (opts: ViewOptions, extra: Record<string, string | undefined> = {}) => ({
  window: `${opts.window}ms`,
  namespace: opts.namespace,
  ...extra,
});

/** The services view from the chosen source. */
export async function loadServices(
  client: ControlClient,
  opts: ViewOptions,
  service?: string,
): Promise<ServicesView> {
  const q = { windowMs: opts.window, namespace: opts.namespace, service };
  if (opts.prometheus) return new PrometheusViews(opts.prometheus).services(q);
  return (
    await client.request<ServicesView>('GET', '/v1/stats/services', { query: viewQuery(opts, { service }) })
  ).body;
}

export function servicesTable(view: ServicesView): string {
  return formatTable(
    ['NAMESPACE', 'SERVICE', 'INSTANCES', 'SUCCESS', 'RPS', 'P50', 'P95', 'P99', 'MTLS'],
    view.services.map((s) => [
      s.namespace,
      s.service,
      s.stale ? `${s.instances - s.stale}/${s.instances} (${s.stale} stale)` : String(s.instances),
      fmtPercent(s.successRate),
      fmtRps(s.rps),
      ...fmtLatency(s.latencyMs),
      fmtPercent(s.tlsPercent, false),
    ]),
  );
}

export function statCommand(): Command {
  return withViewOptions(
    new Command('stat')
      .description(
        'golden signals per service: success rate, rps, p50/p95/p99 latency, instances, mTLS share',
      )
      .argument('[service]', 'only this service'),
  )
    .addHelpText(
      'after',
      `
Figures are the server side of each service (its own sidecars' inbound traffic).
Instances that did not answer their last metrics scrape are shown as stale.

Examples:
  hexmesh stat
  hexmesh stat reviews -w 5m -o json
  hexmesh stat --prometheus http://127.0.0.1:9090`,
    )
    .action((service: string | undefined, opts: ViewOptions) =>
      runWithClient('stat', opts, async (client) => {
        const view = await withProgress('querying', loadServices(client, opts, service));
        requireRows('stat', service, view.services.length, opts);
        writeView(opts, view, () => servicesTable(view));
      }),
    );
}
