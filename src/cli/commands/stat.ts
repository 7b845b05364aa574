/**
 * `hexmesh stat [SERVICE]`: per service success rate, rps, latency percentiles, instances
 * and mTLS share, from the control plane's embedded metrics (`/v1/stats/services`) or,
 * with `--prometheus URL`, from PromQL against a real Prometheus. Also the shared
 * plumbing of `hexmesh edges` and `hexmesh routes`: options, the progress line and cell
 * formats. Control-plane calls go through the CLI's ControlClient.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import { PrometheusViews } from '../../control/metrics/prometheus-views.ts';
import {
  STAT_SPLITS,
  type LatencyMs,
  type ServicesView,
  type StatSplit,
} from '../../control/metrics/views.ts';
import type { ErrorsView } from '../../control/metrics/errors-view.ts';
import type { ControlClient } from '../client/control-client.ts';
import {
  CliFailure,
  formatData,
  formatTable,
  outputOption,
  runWithClient,
  UsageError,
  withControl,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';
import { FrameWriter, INTERVAL_OPTION, WATCH_OPTION, intervalMs, watchFrames } from '../client/watch.ts';

export interface ViewOptions {
  control?: string;
  window: number;
  output: 'table' | 'wide' | 'json' | 'yaml';
  prometheus?: string;
  namespace?: string;
  /** Split each service by the version, revision or id of the instances that served it. */
  by?: StatSplit;
  /** Redraw every `interval` (src/cli/client/watch.ts). */
  watch?: boolean;
  interval?: string;
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
    .addOption(
      new Option('-w, --window <duration>', 'time window of the figures')
        .argParser(windowMs)
        .default(60_000, '1m'),
    )
    .addOption(outputOption(['table', 'wide', 'json', 'yaml'], 'table'))
    .option('-n, --namespace <namespace>', 'only this namespace')
    .option('--prometheus <url>', 'answer from this Prometheus (PromQL) instead of the control plane')
    .option(...WATCH_OPTION)
    .option(...INTERVAL_OPTION);
}

/**
 * Print a view once (`-o` as asked; `check` may refuse it, e.g. an empty named service), or
 * with `--watch` redraw it every `--interval` until Ctrl-C. A watch shows empty views too:
 * traffic may yet come.
 */
export async function showView<V>(
  title: string,
  opts: ViewOptions,
  load: () => Promise<V>,
  table: (view: V, wide: boolean) => string,
  check: (view: V) => void = () => {},
): Promise<void> {
  const out = opts.output;
  const text = (v: V) => (out === 'json' || out === 'yaml' ? formatData(v, out) : table(v, out === 'wide'));
  if (!opts.watch) {
    const view = await withProgress('querying', load());
    check(view);
    return writeOut(text(view));
  }
  const data = out === 'json' || out === 'yaml' ? out : undefined;
  await watchFrames(title, intervalMs(opts), async () => text(await load()), new FrameWriter(), data);
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

/**
 * A view of one named service with nothing in it exits 4 (as `kubectl get pod NAME`): a
 * script asking about `reviews` must not read "no rows" as "all is well".
 */
export function requireRows(
  verb: string,
  service: string | undefined,
  rows: number,
  opts: ViewOptions,
  what = `service "${service}"`,
): void {
  if (service === undefined || rows > 0) return;
  const list =
    what === `service "${service}"` ? 'hexmesh services lists the catalog' : 'hexmesh stat deploy lists them';
  throw new CliFailure(
    `no figures for ${what} in the last ${opts.window / 1000}s (no such ${what.split(' ')[0]}, or no traffic in that window; ${list})`,
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
  if (opts.prometheus) {
    if (opts.by)
      throw new UsageError(
        "--by needs the control plane's metrics (it knows which version each instance runs), not --prometheus",
      );
    return new PrometheusViews(opts.prometheus).services(q);
  }
  return (
    await client.request<ServicesView>('GET', '/v1/stats/services', {
      query: viewQuery(opts, { service, by: opts.by }),
    })
  ).body;
}

/** `svc/NAME` and `service/NAME` name a service as a bare NAME does (as `linkerd viz stat`). */
export function serviceArg(arg: string | undefined): string | undefined {
  if (arg === undefined) return undefined;
  const m = /^(?:svc|service|services)\/(.+)$/.exec(arg);
  if (m) return m[1];
  if (arg.includes('/'))
    throw new UsageError(`expected a service as NAME or svc/NAME, got ${JSON.stringify(arg)}`);
  return arg;
}

/** What `hexmesh stat` was asked about: a service (or all), a namespace, or Deployments. */
export type StatTarget =
  | { kind: 'service'; name?: string }
  | { kind: 'namespace'; name: string }
  | { kind: 'deployment'; name?: string };

/**
 * The resource argument of `hexmesh stat`, as `linkerd viz stat` takes it: NAME or svc/NAME
 * (a service), ns/NAME (a namespace's services), deploy, deploy/NAME (Kubernetes Deployments).
 */
export function statTarget(arg: string | undefined): StatTarget {
  if (arg === undefined) return { kind: 'service' };
  const m = /^([a-z]+)(?:\/(.*))?$/.exec(arg);
  const kind = m?.[1];
  if (kind === 'deploy' || kind === 'deployment' || kind === 'deployments') {
    if (m?.[2] === '') throw new UsageError('expected deploy or deploy/NAME, got ' + JSON.stringify(arg));
    return { kind: 'deployment', name: m?.[2] };
  }
  if ((kind === 'ns' || kind === 'namespace' || kind === 'namespaces') && m?.[2] !== undefined) {
    if (!m[2]) throw new UsageError('expected ns/NAME, got ' + JSON.stringify(arg));
    return { kind: 'namespace', name: m[2] };
  }
  if (kind === 'ns' || kind === 'namespace' || kind === 'namespaces')
    throw new UsageError('expected a namespace as ns/NAME (or --namespace NAME)');
  return { kind: 'service', name: serviceArg(arg) };
}

/**
 * The rows of `hexmesh stat deploy[/NAME]`: each service's figures per Deployment of the
 * instances that served it (`?by=deployment`), without the instances outside one. A control
 * plane that knows instances but none of a Deployment is not reading Kubernetes (`hexmesh
 * up`, hand-registered instances): a usage error naming what to ask instead.
 */
export async function loadDeployments(
  client: ControlClient,
  opts: ViewOptions,
  name: string | undefined,
): Promise<ServicesView> {
  if (opts.prometheus)
    throw new UsageError(
      "deploy/NAME needs the control plane's metrics (it knows each instance's Deployment), not --prometheus",
    );
  const view = await loadServices(client, { ...opts, by: 'deployment' });
  const inDeployment = view.services.filter((s) => s.deployment);
  if (view.services.length > 0 && inDeployment.length === 0)
    throw new UsageError(
      'no instance the control plane knows belongs to a Kubernetes Deployment (Deployments exist only with hexmesh control --kubernetes); ' +
        'ask by service instead: hexmesh stat svc/NAME --by version|revision|instance',
    );
  return { ...view, services: inDeployment.filter((s) => name === undefined || s.deployment === name) };
}

/** How long ago `ms` was, coarsely (`4s`, `3m`, `2h`). */
function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

/** A service's recent errors as a table, most recently seen first; `wide` adds the instances. */
export function errorsTable(view: ErrorsView, wide = false): string {
  return formatTable(
    [
      'LAST SEEN',
      'SIDE',
      'CALLER',
      'STATUS',
      'GRPC',
      'KIND',
      'VERSION',
      'COUNT',
      ...(wide ? ['NAMESPACE', 'INSTANCES'] : []),
    ],
    view.errors.map((e) => [
      `${ago(e.lastSeen)} ago`,
      e.side,
      e.src || '-',
      e.status || '-',
      e.grpcStatus || '-',
      e.kind || '-',
      e.version || '-',
      String(e.count),
      ...(wide ? [e.namespace, e.instances.join(',') || '-'] : []),
    ]),
  );
}

/** The services view as a table; `wide` adds the request count and the stale instances. */
export function servicesTable(view: ServicesView, wide = false): string {
  const by = view.by;
  return formatTable(
    [
      'NAMESPACE',
      'SERVICE',
      ...(by ? [by.toUpperCase()] : []),
      'INSTANCES',
      'SUCCESS',
      'RPS',
      'P50',
      'P95',
      'P99',
      'MTLS',
      ...(wide ? ['REQUESTS', 'STALE'] : []),
    ],
    view.services.map((s) => [
      s.namespace,
      s.service,
      ...(by ? [s[by] || '-'] : []),
      s.stale ? `${s.instances - s.stale}/${s.instances} (${s.stale} stale)` : String(s.instances),
      fmtPercent(s.successRate),
      fmtRps(s.rps),
      ...fmtLatency(s.latencyMs),
      fmtPercent(s.tlsPercent, false),
      ...(wide ? [String(s.requests), String(s.stale)] : []),
    ]),
  );
}

export function statCommand(): Command {
  return withViewOptions(
    new Command('stat')
      .description(
        'golden signals per service: success rate, rps, p50/p95/p99 latency, instances, mTLS share',
      )
      .argument(
        '[resource]',
        'only this service (NAME or svc/NAME), namespace (ns/NAME) or Deployments (deploy, deploy/NAME)',
      ),
  )
    .addOption(
      new Option(
        '--by <split>',
        'one row per version, revision, instance or Kubernetes Deployment of each service',
      ).choices(STAT_SPLITS),
    )
    .option(
      '--errors',
      "the named service's failed requests in the window, by status, gRPC status, error kind and version",
    )
    .addHelpText(
      'after',
      `
Figures are the server side of each service (its own sidecars' inbound traffic).
Instances that did not answer their last metrics scrape are shown as stale. --by
splits a service by the instances that served the requests: their "version" label,
their rollout revision, each instance (a 50/50 canary shows as two rows), or their
Kubernetes Deployment. As linkerd viz stat: ns/NAME shows the services of one
namespace (as --namespace NAME); deploy lists every Deployment's figures (one row per
service a Deployment serves; -n limits it to a namespace) and deploy/NAME one
Deployment's. Deployments exist with hexmesh control --kubernetes only: elsewhere deploy
exits 2 (ask by service, --by version|revision|instance).
--errors lists a service's failed requests from the control plane's history: both
its own sidecars' (side server) and its callers' (side client), by HTTP status, gRPC
status, the x-hexmesh-error kind of responses a proxy made up, and version; with the
count in the window and when each was last seen. No rows exits 0 for a service the
control plane knows (no failures), 4 for one it does not.

Examples:
  hexmesh stat
  hexmesh stat reviews -w 5m -o json
  hexmesh stat svc/reviews --by version
  hexmesh stat reviews --by instance
  hexmesh stat deploy -n shop
  hexmesh stat deploy/reviews-v2 -n shop
  hexmesh stat ns/shop
  hexmesh stat svc/reviews --errors -w 15m
  hexmesh stat --watch --interval 5s
  hexmesh stat --prometheus http://127.0.0.1:9090`,
    )
    .action((arg: string | undefined, opts: ViewOptions & { errors?: boolean }) =>
      runWithClient('stat', opts, async (client) => {
        const target = statTarget(arg);
        if (target.kind === 'namespace') {
          if (opts.namespace !== undefined && opts.namespace !== target.name)
            throw new UsageError(`ns/${target.name} and --namespace ${opts.namespace} disagree`);
          opts.namespace = target.name;
        }
        if (target.kind === 'deployment') {
          if (opts.errors || opts.by)
            throw new UsageError(
              'deploy[/NAME] takes neither --errors nor --by (its rows are per Deployment)',
            );
          const name = target.name;
          const label = name === undefined ? 'deployments' : `deployment "${name}"`;
          return showView(
            `hexmesh stat deploy${name ? `/${name}` : ''}`,
            opts,
            () => loadDeployments(client, opts, name),
            servicesTable,
            (view) => requireRows('stat', name, view.services.length, opts, label),
          );
        }
        const service = target.kind === 'service' ? target.name : undefined;
        if (opts.errors) {
          if (service === undefined)
            throw new UsageError('--errors needs a service: hexmesh stat svc/NAME --errors');
          if (opts.prometheus || opts.by)
            throw new UsageError(
              "--errors reads the control plane's error history; it takes neither --prometheus nor --by",
            );
          // No errors is an answer for a service the views know; for one they do not, exit 4.
          let known = true;
          const load = async () => {
            const view = (
              await client.request<ErrorsView>('GET', '/v1/stats/errors', {
                query: viewQuery(opts, { service }),
              })
            ).body;
            if (!opts.watch && view.errors.length === 0)
              known = (await loadServices(client, opts, service)).services.length > 0;
            return view;
          };
          return showView(`hexmesh stat ${service} --errors`, opts, load, errorsTable, () =>
            requireRows('stat', service, known ? 1 : 0, opts),
          );
        }
        await showView(
          `hexmesh stat${service ? ` ${service}` : ''}`,
          opts,
          () => loadServices(client, opts, service),
          servicesTable,
          (view) => requireRows('stat', service, view.services.length, opts),
        );
      }),
    );
}
