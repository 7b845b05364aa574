/**
 * The stats views answered from a real Prometheus (`hexmesh stat --prometheus URL`)
 * instead of the control plane: the same JSON shapes (views.ts) from PromQL over the
 * `hexmesh_*` series. Quantiles are computed here from the summed bucket increases with
 * the same function the control plane uses, so both sources agree on method.
 *
 * Expects the scrape config of deploy/prometheus/prometheus.yml: targets from the
 * control plane's HTTP SD, with `namespace` and `service` target labels.
 */
import type { Bucket } from './histogram.ts';
import {
  quantileMs,
  type EdgeStat,
  type EdgesView,
  type LatencyMs,
  type RouteStat,
  type RoutesView,
  type ServiceStat,
  type ServicesView,
  type ViewQuery,
} from './views.ts';

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

const SEP = '\u0000';

/** A PromQL string literal. */
const lit = (v: string) => JSON.stringify(v);

export class PrometheusViews {
  readonly #base: string;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, opts: { timeoutMs?: number } = {}) {
    this.#base = baseUrl.replace(/\/+$/, '');
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Run an instant query; the result vector. */
  async query(promql: string): Promise<VectorSample[]> {
    const res = await fetch(`${this.#base}/api/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ query: promql }).toString(),
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    const body = (await res.json().catch(() => undefined)) as
      { status: string; error?: string; data?: { resultType: string; result: VectorSample[] } } | undefined;
    if (!res.ok || body?.status !== 'success')
      throw new Error(`Prometheus ${this.#base}: ${body?.error ?? `HTTP ${res.status}`} (query: ${promql})`);
    if (body.data?.resultType !== 'vector') throw new Error(`Prometheus: expected a vector from ${promql}`);
    return body.data.result;
  }

  async #sumBy(
    by: string[],
    selector: string,
    windowMs: number,
    metric = 'hexmesh_requests_total',
  ): Promise<Map<string, number>> {
    const w = `${Math.max(1, Math.round(windowMs / 1000))}s`;
    const r = await this.query(`sum by (${by.join(', ')}) (increase(${metric}{${selector}}[${w}]))`);
    const out = new Map<string, number>();
    for (const s of r) out.set(by.map((l) => s.metric[l] ?? '').join(SEP), Number(s.value[1]));
    return out;
  }

  /** Totals, successes, TLS and buckets by `by` for `selector`. */
  async #figures(by: string[], selector: string, windowMs: number) {
    const [total, ok, tls, bucketsRaw] = await Promise.all([
      this.#sumBy(by, selector, windowMs),
      this.#sumBy(by, `${selector},status_code!~"5..",grpc_status=~"0|"`, windowMs),
      this.#sumBy(by, `${selector},tls="true"`, windowMs),
      this.#sumBy([...by, 'le'], selector, windowMs, 'hexmesh_request_duration_seconds_bucket'),
    ]);
    const buckets = new Map<string, Bucket[]>();
    for (const [k, count] of bucketsRaw) {
      const i = k.lastIndexOf(SEP);
      const key = k.slice(0, i);
      const le = k.slice(i + 1);
      const list = buckets.get(key) ?? [];
      list.push({ le: le === '+Inf' ? Infinity : Number(le), count });
      buckets.set(key, list);
    }
    return { total, ok, tls, buckets };
  }

  async services(q: ViewQuery & { service?: string }): Promise<ServicesView> {
    let sel = 'direction="inbound"';
    if (q.namespace !== undefined) sel += `,namespace=${lit(q.namespace)}`;
    if (q.service !== undefined) sel += `,dst_service=${lit(q.service)}`;
    let upSel = 'service!=""';
    if (q.namespace !== undefined) upSel += `,namespace=${lit(q.namespace)}`;
    if (q.service !== undefined) upSel += `,service=${lit(q.service)}`;
    const [f, up, down] = await Promise.all([
      this.#figures(['namespace', 'dst_service'], sel, q.windowMs),
      this.query(`count by (namespace, service) (up{${upSel}})`),
      this.query(`count by (namespace, service) (up{${upSel}} == 0)`),
    ]);
    const inst = new Map(
      up.map((s) => [`${s.metric.namespace ?? ''}${SEP}${s.metric.service}`, Number(s.value[1])]),
    );
    const stale = new Map(
      down.map((s) => [`${s.metric.namespace ?? ''}${SEP}${s.metric.service}`, Number(s.value[1])]),
    );
    const keys = new Set([...f.total.keys(), ...inst.keys()]);
    const services = [...keys].map((k): ServiceStat => {
      const [namespace, service] = k.split(SEP);
      const total = f.total.get(k) ?? 0;
      return {
        namespace,
        service,
        requests: round3(total),
        rps: round3(total / (q.windowMs / 1000)),
        successRate: total > 0 ? (f.ok.get(k) ?? 0) / total : null,
        latencyMs: latency(f.buckets.get(k)),
        tlsPercent: total > 0 ? Math.round(((f.tls.get(k) ?? 0) / total) * 10000) / 100 : null,
        instances: inst.get(k) ?? 0,
        stale: stale.get(k) ?? 0,
      };
    });
    services.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.service.localeCompare(b.service));
    return { source: 'prometheus', windowMs: q.windowMs, services };
  }

  async edges(q: ViewQuery): Promise<EdgesView> {
    let sel = 'direction="outbound"';
    if (q.namespace !== undefined) sel += `,namespace=${lit(q.namespace)}`;
    const [f, inTotal, inTls] = await Promise.all([
      this.#figures(['namespace', 'src_service', 'dst_service'], sel, q.windowMs),
      this.#sumBy(['src_service', 'dst_service'], 'direction="inbound"', q.windowMs),
      this.#sumBy(['src_service', 'dst_service'], 'direction="inbound",tls="true"', q.windowMs),
    ]);
    const edges = [...f.total].map(([k, total]): EdgeStat => {
      const [namespace, src, dst] = k.split(SEP);
      const server = inTotal.get(src + SEP + dst);
      return {
        namespace,
        src,
        dst,
        requests: round3(total),
        rps: round3(total / (q.windowMs / 1000)),
        successRate: total > 0 ? (f.ok.get(k) ?? 0) / total : null,
        p99Ms: quantileMs(0.99, f.buckets.get(k) ?? []),
        tlsPercent: server ? Math.round(((inTls.get(src + SEP + dst) ?? 0) / server) * 10000) / 100 : null,
      };
    });
    edges.sort((a, b) => a.src.localeCompare(b.src) || a.dst.localeCompare(b.dst));
    return { source: 'prometheus', windowMs: q.windowMs, edges };
  }

  async routes(q: ViewQuery & { service: string }): Promise<RoutesView> {
    let sel = `direction="outbound",dst_service=${lit(q.service)}`;
    if (q.namespace !== undefined) sel += `,namespace=${lit(q.namespace)}`;
    const f = await this.#figures(['namespace', 'route'], sel, q.windowMs);
    const routes = [...f.total].map(([k, total]): RouteStat => {
      const [namespace, route] = k.split(SEP);
      return {
        namespace,
        service: q.service,
        route,
        requests: round3(total),
        rps: round3(total / (q.windowMs / 1000)),
        successRate: total > 0 ? (f.ok.get(k) ?? 0) / total : null,
        latencyMs: latency(f.buckets.get(k)),
      };
    });
    routes.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.route.localeCompare(b.route));
    return { source: 'prometheus', windowMs: q.windowMs, routes };
  }
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

function latency(b: Bucket[] | undefined): LatencyMs {
  if (!b) return { p50: null, p95: null, p99: null };
  return { p50: quantileMs(0.5, b), p95: quantileMs(0.95, b), p99: quantileMs(0.99, b) };
}
