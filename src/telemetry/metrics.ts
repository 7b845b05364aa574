/**
 * Every metric one proxy exports, in a prom-client Registry of its own (never the
 * global one, so several proxies in one process do not collide). Names and labels
 * are documented in docs/telemetry.md; a test keeps that page complete.
 *
 * Features do not touch prom-client: they call the methods here (or leave notes on
 * the request context for the telemetry layer), and every labelled metric is bound
 * by a cardinality guard (see cardinality-guard.ts).
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Direction } from '../proxy/core/dispatch.ts';
import { BoundedFamily, SeriesBudget } from './cardinality-guard.ts';
import { LeanCounter, LeanHistogram } from './lean-metric.ts';
import { RequestSeriesCache, type RequestSeries } from './request-series.ts';

/**
 * Duration buckets in seconds, 1 ms to 30 s: in-mesh hops sit in the low
 * milliseconds, and 30 s is past the 15 s default route timeout, so timeouts land
 * in a finite bucket rather than only in +Inf.
 */
export const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** Default cap on distinct label sets per metric. */
export const DEFAULT_MAX_SERIES = 2000;

/** `hexmesh_circuit_state` values. */
export const CIRCUIT_STATE = { closed: 0, 'half-open': 1, open: 2 } as const;
export type CircuitState = keyof typeof CIRCUIT_STATE;

export interface ProxyMetricsOptions {
  /** This proxy's service, exported in `hexmesh_proxy_info`. */
  service: string;
  namespace: string;
  /** Cap on distinct label sets per metric (default 2000); beyond it labels collapse to `overflow`. */
  maxSeriesPerMetric?: number;
  /** Node process metrics with the `hexmesh_proxy_` prefix (default true). */
  processMetrics?: boolean;
  /** Wall clock in ms for `hexmesh_cert_expiry_seconds` (default Date.now); tests inject one. */
  wallNow?: () => number;
}

/** Per-connection TCP series, bound once when the connection opens. */
export interface TcpConnectionMetrics {
  /** Count bytes read from this connection's peer. */
  read(bytes: number): void;
  /** Count bytes written to this connection's peer. */
  written(bytes: number): void;
  /** The connection closed; idempotent. */
  close(): void;
}

interface TcpChildren {
  opened: Counter.Internal;
  read: Counter.Internal;
  write: Counter.Internal;
}

const SEP = '\u0000';

class TcpConnectionHandle implements TcpConnectionMetrics {
  private closed = false;

  constructor(
    private readonly children: TcpChildren,
    private readonly open: Gauge.Internal<'direction'>,
  ) {}

  read(bytes: number): void {
    this.children.read.inc(bytes);
  }

  written(bytes: number): void {
    this.children.write.inc(bytes);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.open.dec();
  }
}

/** The metrics of one proxy. */
export class ProxyMetrics {
  /** The registry `/metrics` exports. */
  readonly registry = new Registry();
  readonly service: string;
  readonly namespace: string;
  readonly maxSeries: number;

  private readonly requestCache: RequestSeriesCache;
  private readonly tcpOpen: Gauge<'direction'>;
  private readonly tcp: BoundedFamily<TcpChildren>;
  private readonly retries: BoundedFamily<Counter.Internal>;
  private readonly budgetExhausted: BoundedFamily<Counter.Internal>;
  private readonly circuit: BoundedFamily<Gauge.Internal<'dst_service'>>;
  private readonly ejections: BoundedFamily<Counter.Internal>;
  private readonly ejected: BoundedFamily<Gauge.Internal<'dst_service'>>;
  private readonly synthetic: BoundedFamily<Counter.Internal>;
  private readonly authz: BoundedFamily<Counter.Internal>;
  private readonly configVersion: Gauge;
  private readonly configRejections: Counter;
  private readonly certExpiry: Gauge;
  private certNotAfterMs: number | null = null;
  private readonly wallNow: () => number;

  constructor(opts: ProxyMetricsOptions) {
    this.service = opts.service;
    this.namespace = opts.namespace;
    this.maxSeries = opts.maxSeriesPerMetric ?? DEFAULT_MAX_SERIES;
    this.wallNow = opts.wallNow ?? Date.now;
    const registers = [this.registry];
    const max = this.maxSeries;

    new Gauge({
      name: 'hexmesh_proxy_info',
      help: 'Always 1; labels say which service this proxy serves.',
      labelNames: ['service', 'namespace'],
      registers,
    }).set({ service: opts.service, namespace: opts.namespace }, 1);

    const overflows = new Counter({
      name: 'hexmesh_metric_overflow_total',
      help: 'Observations recorded under the all-"overflow" label set because the metric reached its series cap.',
      labelNames: ['metric'],
      registers,
    });

    // Recorded once per request: lean families, not prom-client's (see lean-metric.ts).
    const requests = new LeanCounter(
      'hexmesh_requests_total',
      'HTTP and gRPC requests that completed (response body ended, failed or was aborted).',
      ['direction', 'src_service', 'dst_service', 'route', 'status_code', 'grpc_status', 'tls'],
      registers,
    );
    const durations = new LeanHistogram(
      'hexmesh_request_duration_seconds',
      'Time from the request reaching the proxy to the end of the response body.',
      ['direction', 'src_service', 'dst_service', 'route', 'tls'],
      DURATION_BUCKETS,
      registers,
    );
    this.requestCache = new RequestSeriesCache(
      requests,
      durations,
      new SeriesBudget('hexmesh_requests_total', max, overflows),
      new SeriesBudget('hexmesh_request_duration_seconds', max, overflows),
    );

    const tcpConnections = new Counter({
      name: 'hexmesh_tcp_connections_total',
      help: 'TCP connections opened, by direction and peer service.',
      labelNames: ['direction', 'peer'],
      registers,
    });
    this.tcpOpen = new Gauge({
      name: 'hexmesh_tcp_open_connections',
      help: 'TCP connections open now.',
      labelNames: ['direction'],
      registers,
    });
    const tcpBytes = new Counter({
      name: 'hexmesh_tcp_bytes_total',
      help: 'Bytes read from (dir="read") and written to (dir="write") TCP peers.',
      labelNames: ['direction', 'peer', 'dir'],
      registers,
    });
    // One budget for the (direction, peer) pair covers the three children bound to it.
    this.tcp = new BoundedFamily('hexmesh_tcp_connections_total', max, overflows, 2, ([d, p]) => ({
      opened: tcpConnections.labels(d, p),
      read: tcpBytes.labels(d, p, 'read'),
      write: tcpBytes.labels(d, p, 'write'),
    }));

    const retries = new Counter({
      name: 'hexmesh_retries_total',
      help: 'Retries sent (tries beyond the first), by the reason of the failed try.',
      labelNames: ['dst_service', 'route', 'reason'],
      registers,
    });
    this.retries = new BoundedFamily('hexmesh_retries_total', max, overflows, 3, (v) => retries.labels(...v));

    const exhausted = new Counter({
      name: 'hexmesh_retry_budget_exhausted_total',
      help: 'Retries not sent because the retry budget was spent.',
      labelNames: ['dst_service'],
      registers,
    });
    this.budgetExhausted = new BoundedFamily('hexmesh_retry_budget_exhausted_total', max, overflows, 1, (v) =>
      exhausted.labels(...v),
    );

    const circuit = new Gauge({
      name: 'hexmesh_circuit_state',
      help: 'Circuit breaker state per destination: 0 closed, 1 half-open, 2 open.',
      labelNames: ['dst_service'],
      registers,
    });
    this.circuit = new BoundedFamily('hexmesh_circuit_state', max, overflows, 1, (v) => circuit.labels(...v));

    const ejections = new Counter({
      name: 'hexmesh_outlier_ejections_total',
      help: 'Endpoints ejected by outlier detection, by reason.',
      labelNames: ['dst_service', 'reason'],
      registers,
    });
    this.ejections = new BoundedFamily('hexmesh_outlier_ejections_total', max, overflows, 2, (v) =>
      ejections.labels(...v),
    );

    const ejected = new Gauge({
      name: 'hexmesh_endpoint_ejected',
      help: 'Endpoints of a destination ejected now.',
      labelNames: ['dst_service'],
      registers,
    });
    this.ejected = new BoundedFamily('hexmesh_endpoint_ejected', max, overflows, 1, (v) =>
      ejected.labels(...v),
    );

    const synthetic = new Counter({
      name: 'hexmesh_synthetic_responses_total',
      help: 'Responses the proxy made up itself, by their x-hexmesh-error code.',
      labelNames: ['direction', 'dst_service', 'code'],
      registers,
    });
    this.synthetic = new BoundedFamily('hexmesh_synthetic_responses_total', max, overflows, 3, (v) =>
      synthetic.labels(...v),
    );

    const authz = new Counter({
      name: 'hexmesh_authz_decisions_total',
      help: 'Inbound authorization decisions: the deciding policy (`none` when no ALLOW policy matched or the path was rejected), its action, and allowed / denied / audited / rejected.',
      labelNames: ['policy', 'action', 'decision'],
      registers,
    });
    this.authz = new BoundedFamily('hexmesh_authz_decisions_total', max, overflows, 3, (v) =>
      authz.labels(...v),
    );

    this.configVersion = new Gauge({
      name: 'hexmesh_config_version',
      help: 'Version of the configuration in force.',
      registers,
    });
    this.configRejections = new Counter({
      name: 'hexmesh_config_rejections_total',
      help: 'Configuration updates rejected as invalid (the previous one stayed in force).',
      registers,
    });
    // Registered only once a certificate is known: no sample at all beats a fake 0.
    this.certExpiry = new Gauge({
      name: 'hexmesh_cert_expiry_seconds',
      help: 'Seconds until the workload certificate expires (negative once expired).',
      registers: [],
      collect: () => {
        if (this.certNotAfterMs !== null) this.certExpiry.set((this.certNotAfterMs - this.wallNow()) / 1000);
      },
    });

    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: 'hexmesh_proxy_' });
      // prom-client names these gauges `*_total`, which Prometheus reserves for counters
      // (promtool rejects them); the same numbers are in the by-type gauges without the suffix.
      for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
        this.registry.removeSingleMetric(`hexmesh_proxy_nodejs_${name}`);
      }
    }
  }

  /**
   * The request series for one combination, found without allocating. `src` and
   * `dst` are service names, `route` a route name (`<namespace>/<name>` or
   * `default`), never a raw path.
   */
  requestSeries(direction: Direction, src: string, dst: string, route: string, tls: boolean): RequestSeries {
    return this.requestCache.get(direction, src, dst, route, tls);
  }

  /** A TCP connection opened; count its bytes on the returned handle and close it when it closes. */
  tcpConnection(direction: Direction, peer: string): TcpConnectionMetrics {
    const c = this.tcp.get(direction + SEP + peer, [direction, peer]);
    c.opened.inc();
    const open = this.tcpOpen.labels(direction);
    open.inc();
    return new TcpConnectionHandle(c, open);
  }

  /** Count `n` retries to `dst` on `route` for `reason` (e.g. `connect-failed`, `503`). */
  recordRetries(dst: string, route: string, reason: string, n = 1): void {
    this.retries.get(dst + SEP + route + SEP + reason, [dst, route, reason]).inc(n);
  }

  /** Count a retry that the retry budget did not allow. */
  recordRetryBudgetExhausted(dst: string): void {
    this.budgetExhausted.get(dst, [dst]).inc();
  }

  setCircuitState(dst: string, state: CircuitState): void {
    this.circuit.get(dst, [dst]).set(CIRCUIT_STATE[state]);
  }

  /** Count one ejection (reason e.g. `consecutive-5xx`, `consecutive-gateway`, `success-rate`). */
  recordOutlierEjection(dst: string, reason: string): void {
    this.ejections.get(dst + SEP + reason, [dst, reason]).inc();
  }

  /** How many endpoints of `dst` are ejected now. */
  setEjectedEndpoints(dst: string, count: number): void {
    this.ejected.get(dst, [dst]).set(count);
  }

  /** Count a response the proxy made up (`code` is the `x-hexmesh-error` value). */
  recordSynthetic(direction: Direction, dst: string, code: string): void {
    this.synthetic.get(direction + SEP + dst + SEP + code, [direction, dst, code]).inc();
  }

  /**
   * The counter of one authorization outcome, bound once at config time (`policy` is
   * `<namespace>/<name>` or `none`; `action` ALLOW / DENY / AUDIT / none; `decision`
   * allowed / denied / audited / rejected); the layer calls `inc()` per request.
   */
  authzDecision(policy: string, action: string, decision: string): { inc(): void } {
    return this.authz.get(policy + SEP + action + SEP + decision, [policy, action, decision]);
  }

  setConfigVersion(version: number): void {
    this.configVersion.set(version);
  }

  recordConfigRejection(): void {
    this.configRejections.inc();
  }

  /**
   * The workload certificate's notAfter (epoch ms), or null to stop exporting
   * `hexmesh_cert_expiry_seconds` (plaintext). The value is computed at scrape time.
   */
  setCertExpiry(notAfterMs: number | null): void {
    const was = this.certNotAfterMs;
    this.certNotAfterMs = notAfterMs;
    if (was === null && notAfterMs !== null) this.registry.registerMetric(this.certExpiry);
    if (was !== null && notAfterMs === null) this.registry.removeSingleMetric('hexmesh_cert_expiry_seconds');
  }

  /** Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
