/**
 * The telemetry layer: observability is a layer, not sprinkled code. It times each
 * request from `ctx.start` (arrival at the proxy) to the end of the response body,
 * and once the body is done records `hexmesh_requests_total`,
 * `hexmesh_request_duration_seconds`, synthetic responses, the retries the retry
 * layer noted, and an access log line.
 *
 * Streamed bodies are never buffered or read: the layer listens for 'end', 'error'
 * and 'close' only (a 'data' or 'readable' listener would switch a paused stream to
 * flowing and lose data nobody consumes yet). gRPC status comes from the response
 * headers (trailers-only responses) or from `res.trailers`, which the producer
 * fills before the body ends.
 *
 * Notes it reads from `ctx.notes` (set by other layers):
 * - `retries` (number): retries sent for this request; `retryReason` (string,
 *   optional, `unknown` when absent): why the last one was sent. Counted into `hexmesh_retries_total` here, so the retry
 *   layer only leaves notes.
 * - `budgetExhausted` (true): a retry was refused by the retry budget.
 */
import type { Readable } from 'node:stream';
import {
  header,
  type Layer,
  type MeshRequest,
  type MeshResponse,
  type Service,
} from '../proxy/core/dispatch.ts';
import { errorResponse } from '../proxy/core/error-response.ts';
import type { AccessLog, AccessLogEntry } from './access-log.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { TapHub } from './tap/tap-hub.ts';
import { grpcStatusIndex, grpcStatusLabel } from './request-series.ts';

export interface TelemetryLayerOptions {
  /** Monotonic clock in ms, the same one `ctx.start` was taken with (default performance.now). */
  now?: () => number;
  /** Live tap viewers: each finished request is offered to them while any is connected. */
  tap?: TapHub;
}

type Outcome = AccessLogEntry['outcome'];

/** W3C traceparent: version-traceid-parentid-flags. Compiled once, at load. */
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;
const ZERO_TRACE = '0'.repeat(32);

const kExchange = Symbol('hexmesh.telemetry.exchange');
type TrackedBody = Readable & { [kExchange]?: Exchange };

/** State shared by every request through one layer instance. */
class Recorder {
  constructor(
    readonly metrics: ProxyMetrics,
    readonly log: AccessLog | undefined,
    readonly now: () => number,
    readonly tap: TapHub | undefined,
  ) {}

  /** Record one finished exchange. `res` is what the client received (or will, for a thrown error). */
  record(req: MeshRequest, res: MeshResponse, outcome: Outcome): void {
    const ctx = req.ctx;
    const seconds = (this.now() - ctx.start) / 1000;
    let grpc = grpcStatusIndex(res.headers['grpc-status']);
    if (grpc === -1 && res.trailers !== undefined) grpc = grpcStatusIndex(res.trailers['grpc-status']);
    const src = ctx.srcService || 'unknown';
    const dst = ctx.dstService || 'unknown';
    this.metrics.requestSeries(ctx.direction, src, dst, ctx.route, ctx.tls).record(res.status, grpc, seconds);
    if (res.synthetic !== undefined) this.metrics.recordSynthetic(ctx.direction, dst, res.synthetic);
    const notes = ctx.notes;
    const retries = typeof notes.retries === 'number' ? notes.retries : 0;
    if (retries > 0) {
      const reason = typeof notes.retryReason === 'string' ? notes.retryReason : 'unknown';
      this.metrics.recordRetries(dst, ctx.route, reason, retries);
    }
    if (notes.budgetExhausted === true) this.metrics.recordRetryBudgetExhausted(dst);
    if (this.log !== undefined) this.log.write(logEntry(req, res, outcome, grpc, seconds, retries));
    if (this.tap !== undefined && this.tap.active) this.tap.publish(req, res, grpc, seconds);
  }
}

/** One request in flight whose response body is still streaming. */
class Exchange {
  private done = false;

  constructor(
    private readonly recorder: Recorder,
    private readonly req: MeshRequest,
    private readonly res: MeshResponse,
  ) {}

  finish(body: TrackedBody, outcome: Outcome): void {
    if (this.done) return;
    this.done = true;
    body.removeListener('end', onBodyEnd);
    body.removeListener('error', onBodyError);
    body.removeListener('close', onBodyClose);
    body[kExchange] = undefined;
    this.recorder.record(this.req, this.res, outcome);
  }
}

// Module-level listeners with the exchange on the stream: no closure per request.
function onBodyEnd(this: TrackedBody): void {
  this[kExchange]?.finish(this, 'end');
}
function onBodyError(this: TrackedBody): void {
  this[kExchange]?.finish(this, 'error');
}
function onBodyClose(this: TrackedBody): void {
  // 'close' after a clean 'end' never gets here (finish removed us); alone it means aborted.
  this[kExchange]?.finish(this, 'aborted');
}

/**
 * Build the telemetry layer. Place it outermost on both paths so it sees every
 * request, including ones inner layers reject; `accessLog` is optional (off by
 * default).
 */
export function telemetryLayer(
  metrics: ProxyMetrics,
  accessLog?: AccessLog,
  opts?: TelemetryLayerOptions,
): Layer {
  const recorder = new Recorder(
    metrics,
    accessLog,
    opts?.now ?? performance.now.bind(performance),
    opts?.tap,
  );
  return (next: Service): Service =>
    async function telemetry(req: MeshRequest): Promise<MeshResponse> {
      let res: MeshResponse;
      try {
        res = await next(req);
      } catch (err) {
        // The error becomes a synthetic response one layer out; record what the
        // client will get, from the one module that maps errors to responses.
        const synthetic = errorResponse(err, req);
        synthetic.body?.destroy();
        recorder.record(req, synthetic, 'end');
        throw err;
      }
      const body = res.body as TrackedBody | null;
      if (body === null || body.readableEnded || body.destroyed) {
        recorder.record(req, res, body === null || body.readableEnded ? 'end' : 'aborted');
      } else {
        body[kExchange] = new Exchange(recorder, req, res);
        body.on('end', onBodyEnd);
        body.on('error', onBodyError);
        body.on('close', onBodyClose);
      }
      return res;
    };
}

function logEntry(
  req: MeshRequest,
  res: MeshResponse,
  outcome: Outcome,
  grpc: number,
  seconds: number,
  retries: number,
): AccessLogEntry {
  const ctx = req.ctx;
  return {
    time: new Date().toISOString(),
    direction: ctx.direction,
    src_service: ctx.srcService || 'unknown',
    dst_service: ctx.dstService || 'unknown',
    peer_identity: ctx.peerIdentity || null,
    route: ctx.route,
    method: req.method,
    authority: stripUserinfo(req.authority),
    path: stripQuery(req.path),
    protocol: req.protocol,
    status: res.status,
    grpc_status: grpc === -1 ? null : grpcStatusLabel(grpc),
    duration_ms: Math.round(seconds * 1e6) / 1e3,
    request_bytes: contentLength(req.headers['content-length']),
    response_bytes: contentLength(res.headers['content-length']),
    upstream: ctx.endpoint || null,
    retries,
    error: res.synthetic ?? null,
    outcome,
    tls: ctx.tls,
    trace_id: traceId(header(req.headers, 'traceparent')),
  };
}

/** Path without query string or fragment: query strings carry tokens and keys. */
export function stripQuery(path: string): string {
  let end = path.indexOf('?');
  const hash = path.indexOf('#');
  if (hash !== -1 && (end === -1 || hash < end)) end = hash;
  return end === -1 ? path : path.slice(0, end);
}

function stripUserinfo(authority: string): string {
  const at = authority.lastIndexOf('@');
  return at === -1 ? authority : authority.slice(at + 1);
}

function contentLength(v: string | string[] | undefined): number | null {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || s === '') return null;
  const n = Number(s);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** Trace id from a W3C traceparent; null when absent, malformed or all zeros (invalid per spec). */
export function traceId(traceparent: string | undefined): string | null {
  if (traceparent === undefined) return null;
  const m = TRACEPARENT.exec(traceparent);
  return m === null || m[1] === ZERO_TRACE ? null : m[1];
}
