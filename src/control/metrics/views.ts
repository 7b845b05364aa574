/**
 * The stats views (`/v1/stats/*`, `hexmesh stat|edges|routes`): their JSON shapes, shared
 * by both sources — the embedded collector (here) and a real Prometheus
 * (prometheus-views.ts) — and how they are computed from the window store.
 *
 * Which side counts what (as Linkerd's viz):
 * - a **service**'s figures are its server side: `direction="inbound"` series reported
 *   by its own proxies (`dst_service` = the service);
 * - an **edge** src → dst is the client side: `direction="outbound"` series of src's
 *   proxies (what the caller experienced, proxy-made failures included), with its TLS
 *   share from the server side (dst's inbound series from src), since outbound
 *   requests leave the app in plaintext;
 * - a **route** is a client-side route: outbound series to the service, by `route`.
 */
import { histogramQuantile, type Bucket } from './histogram.ts';
import type { MetricsCollector, TargetStatus } from './collector.ts';
import type { Aggregate, SeriesLabels } from './window-store.ts';

/**
 * How a view may split a service's figures (`?by=`): by the version or revision label of
 * the instance whose sidecar served them, by that instance, or by its Kubernetes Deployment
 * (`hexmesh.io/deployment`, set on instances of Pods a Deployment owns: translate.ts).
 */
export type StatSplit = 'version' | 'revision' | 'instance' | 'deployment';
export const STAT_SPLITS: readonly StatSplit[] = ['version', 'revision', 'instance', 'deployment'];

export interface LatencyMs {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** One service. Figures are null when there was no traffic in the window. */
export interface ServiceStat {
  namespace: string;
  service: string;
  /** Requests in the window. */
  requests: number;
  rps: number;
  /** 0..1; non-5xx, and gRPC status 0 for gRPC. */
  successRate: number | null;
  latencyMs: LatencyMs;
  /** 0..100: share of requests that arrived over mTLS. */
  tlsPercent: number | null;
  /** Instances known (catalog and connected proxies). */
  instances: number;
  /** Of those, how many did not answer their last scrape. */
  stale: number;
  /** With `by=version`: the instances' `version` label ('' for those without one). */
  version?: string;
  /** With `by=revision`: the instances' rollout revision ('' outside a rollout). */
  revision?: string;
  /** With `by=instance`: the instance id. */
  instance?: string;
  /** With `by=deployment`: the instances' Kubernetes Deployment ('' for those outside one). */
  deployment?: string;
}

/**
 * One part of an edge, split by the destination's instances (`by=`): the server side of
 * the edge (dst's inbound series from src) reported by the instances of that version,
 * revision or id — during a canary, how the caller's traffic lands on each version.
 */
export interface EdgeSplitStat {
  /** The version, revision or instance id ('' for instances without the label). */
  value: string;
  requests: number;
  rps: number;
  successRate: number | null;
  p99Ms: number | null;
}

export interface EdgeStat {
  /** Namespace of the calling proxies. */
  namespace: string;
  src: string;
  dst: string;
  requests: number;
  rps: number;
  successRate: number | null;
  p99Ms: number | null;
  tlsPercent: number | null;
  /** With `by=`: the edge per destination version, revision or instance, busiest first. */
  split?: EdgeSplitStat[];
}

export interface RouteStat {
  namespace: string;
  service: string;
  route: string;
  requests: number;
  rps: number;
  successRate: number | null;
  latencyMs: LatencyMs;
}

export interface ViewMeta {
  /** `control-plane` or `prometheus`. */
  source: string;
  windowMs: number;
}

export interface ServicesView extends ViewMeta {
  /** Set when each row is one version, revision or instance of its service. */
  by?: StatSplit;
  services: ServiceStat[];
}
export interface EdgesView extends ViewMeta {
  by?: StatSplit;
  edges: EdgeStat[];
}
export interface RoutesView extends ViewMeta {
  routes: RouteStat[];
}

export type TimeseriesMetric = 'rps' | 'success' | 'p99';
export const TIMESERIES_METRICS: readonly TimeseriesMetric[] = ['rps', 'success', 'p99'];

export interface TimeseriesView extends ViewMeta {
  service: string;
  namespace?: string;
  metric: TimeseriesMetric;
  stepMs: number;
  /** `[epoch ms of the step's end, value]`; value null without traffic. */
  points: [number, number | null][];
}

export interface ViewQuery {
  windowMs: number;
  namespace?: string;
}

const SEP = '\u0000';

function buckets(a: Aggregate): Bucket[] {
  return [...a.buckets].map(([le, count]) => ({ le, count }));
}

/** Quantile in milliseconds, rounded to µs. */
export function quantileMs(q: number, b: readonly Bucket[]): number | null {
  const s = histogramQuantile(q, b);
  return s === null ? null : Math.round(s * 1e6) / 1e3;
}

function latency(a: Aggregate | undefined): LatencyMs {
  if (!a) return { p50: null, p95: null, p99: null };
  const b = buckets(a);
  return { p50: quantileMs(0.5, b), p95: quantileMs(0.95, b), p99: quantileMs(0.99, b) };
}

const rate = (n: number, windowMs: number) => Math.round((n / (windowMs / 1000)) * 1000) / 1000;
const ratio = (part: number, whole: number) => (whole > 0 ? part / whole : null);
const percent = (part: number, whole: number) =>
  whole > 0 ? Math.round((part / whole) * 10000) / 100 : null;

/** The part of a series' origin a split groups by ('' without a split). */
function splitValue(s: SeriesLabels, by: StatSplit | undefined): string {
  return by === undefined ? '' : s[by];
}

function targetSplitValue(t: TargetStatus, by: StatSplit | undefined): string {
  if (by === undefined) return '';
  return by === 'instance' ? t.id : (t[by] ?? '');
}

/**
 * Per service (or, with `by`, per version, revision or instance of each service): rps,
 * success rate, latency, mTLS share, instances and stale instances.
 */
export function servicesView(
  c: MetricsCollector,
  q: ViewQuery & { service?: string; by?: StatSplit },
): ServicesView {
  const { from, to } = c.window.range(q.windowMs);
  const keep = (ns: string, svc: string) =>
    (q.namespace === undefined || ns === q.namespace) && (q.service === undefined || svc === q.service);
  const groups = c.window.aggregate(from, to, (s) =>
    s.direction === 'inbound' && keep(s.namespace, s.dst)
      ? s.namespace + SEP + s.dst + SEP + splitValue(s, q.by)
      : undefined,
  );
  const instances = new Map<string, { n: number; stale: number }>();
  for (const t of c.targets()) {
    if (!keep(t.namespace, t.service)) continue;
    const k = t.namespace + SEP + t.service + SEP + targetSplitValue(t, q.by);
    const i = instances.get(k) ?? { n: 0, stale: 0 };
    i.n++;
    if (t.stale) i.stale++;
    instances.set(k, i);
  }
  const keys = new Set([...groups.keys(), ...instances.keys()]);
  const services = [...keys].map((k): ServiceStat => {
    const [namespace, service, part] = k.split(SEP);
    const a = groups.get(k);
    const i = instances.get(k);
    return {
      namespace,
      service,
      ...(q.by !== undefined && { [q.by]: part }),
      requests: a?.requests ?? 0,
      rps: rate(a?.requests ?? 0, q.windowMs),
      successRate: ratio(a?.ok ?? 0, a?.requests ?? 0),
      latencyMs: latency(a),
      tlsPercent: percent(a?.tls ?? 0, a?.requests ?? 0),
      instances: i?.n ?? 0,
      stale: i?.stale ?? 0,
    };
  });
  const part = (x: ServiceStat) => (q.by === undefined ? '' : (x[q.by] ?? ''));
  services.sort(
    (a, b) =>
      a.namespace.localeCompare(b.namespace) ||
      a.service.localeCompare(b.service) ||
      part(a).localeCompare(part(b), undefined, { numeric: true }),
  );
  return {
    source: 'control-plane',
    windowMs: q.windowMs,
    ...(q.by !== undefined && { by: q.by }),
    services,
  };
}

/**
 * Who calls whom: client-side figures per src → dst, TLS share from the server side. With
 * `by`, each edge also carries its server side split by the destination's version,
 * revision or instance.
 */
export function edgesView(c: MetricsCollector, q: ViewQuery & { by?: StatSplit }): EdgesView {
  const { from, to } = c.window.range(q.windowMs);
  const out = c.window.aggregate(from, to, (s) =>
    s.direction === 'outbound' && (q.namespace === undefined || s.namespace === q.namespace)
      ? s.namespace + SEP + s.src + SEP + s.dst
      : undefined,
  );
  const inb = c.window.aggregate(from, to, (s) =>
    s.direction === 'inbound' ? s.src + SEP + s.dst : undefined,
  );
  const parts = new Map<string, EdgeSplitStat[]>();
  if (q.by !== undefined) {
    const by = q.by;
    const split = c.window.aggregate(from, to, (s) =>
      s.direction === 'inbound' ? s.src + SEP + s.dst + SEP + s[by] : undefined,
    );
    for (const [k, a] of split) {
      const cut = k.lastIndexOf(SEP);
      const edge = k.slice(0, cut);
      const list = parts.get(edge) ?? [];
      list.push({
        value: k.slice(cut + 1),
        requests: a.requests,
        rps: rate(a.requests, q.windowMs),
        successRate: ratio(a.ok, a.requests),
        p99Ms: quantileMs(0.99, buckets(a)),
      });
      parts.set(edge, list);
    }
    for (const list of parts.values())
      list.sort((a, b) => b.requests - a.requests || a.value.localeCompare(b.value));
  }
  const edges = [...out].map(([k, a]): EdgeStat => {
    const [namespace, src, dst] = k.split(SEP);
    const server = inb.get(src + SEP + dst);
    return {
      namespace,
      src,
      dst,
      requests: a.requests,
      rps: rate(a.requests, q.windowMs),
      successRate: ratio(a.ok, a.requests),
      p99Ms: quantileMs(0.99, buckets(a)),
      tlsPercent: server ? percent(server.tls, server.requests) : null,
      ...(q.by !== undefined && { split: parts.get(src + SEP + dst) ?? [] }),
    };
  });
  edges.sort((a, b) => a.src.localeCompare(b.src) || a.dst.localeCompare(b.dst));
  return { source: 'control-plane', windowMs: q.windowMs, ...(q.by !== undefined && { by: q.by }), edges };
}

/** Per client-side route to `service`. */
export function routesView(c: MetricsCollector, q: ViewQuery & { service: string }): RoutesView {
  const { from, to } = c.window.range(q.windowMs);
  const groups = c.window.aggregate(from, to, (s) =>
    s.direction === 'outbound' &&
    s.dst === q.service &&
    (q.namespace === undefined || s.namespace === q.namespace)
      ? s.namespace + SEP + s.route
      : undefined,
  );
  const routes = [...groups].map(([k, a]): RouteStat => {
    const [namespace, route] = k.split(SEP);
    return {
      namespace,
      service: q.service,
      route,
      requests: a.requests,
      rps: rate(a.requests, q.windowMs),
      successRate: ratio(a.ok, a.requests),
      latencyMs: latency(a),
    };
  });
  routes.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.route.localeCompare(b.route));
  return { source: 'control-plane', windowMs: q.windowMs, routes };
}

/** One of rps / success / p99 (ms) of a service's server side, per step, for charts. */
export function timeseriesView(
  c: MetricsCollector,
  q: ViewQuery & { service: string; metric: TimeseriesMetric; stepMs: number },
): TimeseriesView {
  const w = c.window;
  const stepSlots = Math.max(1, Math.round(q.stepMs / w.resolutionMs));
  const stepMs = stepSlots * w.resolutionMs;
  const { from, to } = w.range(q.windowMs);
  const match = (s: SeriesLabels) =>
    s.direction === 'inbound' &&
    s.dst === q.service &&
    (q.namespace === undefined || s.namespace === q.namespace);
  const steps = w.steps(from, to, stepSlots, match);
  const first = to - steps.length * stepSlots + 1;
  const points = steps.map((a, i): [number, number | null] => {
    const end = w.slotStart(first + (i + 1) * stepSlots);
    const v =
      q.metric === 'rps'
        ? rate(a.requests, stepMs)
        : q.metric === 'success'
          ? ratio(a.ok, a.requests)
          : quantileMs(0.99, buckets(a));
    return [end, v];
  });
  return {
    source: 'control-plane',
    windowMs: q.windowMs,
    service: q.service,
    ...(q.namespace !== undefined && { namespace: q.namespace }),
    metric: q.metric,
    stepMs,
    points,
  };
}
