/**
 * Live tap (Linkerd's `tap`): a stream of the requests passing this proxy, for viewers
 * connected to the admin `/tap` endpoint. The telemetry layer calls {@link TapHub.publish}
 * once per finished request, and only when `active` (some viewer is connected), so without
 * viewers tap costs one boolean read per request.
 *
 * What an event carries is fixed here and never includes bodies, query strings (tokens
 * and keys live there) or header values: only method, authority, path, status, gRPC
 * status, latency, direction, services, identities, TLS, route and endpoint.
 *
 * Bounds: at most `maxViewers` viewers (16); per viewer a token bucket (`rate` events/s,
 * default 100, burst = rate) and a write buffer cap (64 KiB): an event over either is
 * dropped and counted, and the count is reported in-stream every second
 * (`{"type":"dropped", ...}`), so a slow or flooded viewer costs bounded memory and never
 * slows requests.
 */
import type { ServerResponse } from 'node:http';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { MeshRequest, MeshResponse } from '../../proxy/core/dispatch.ts';
import { grpcStatusLabel } from '../request-series.ts';
import { stripQuery } from '../telemetry-layer.ts';
import { matches, type TapFilter } from './tap-filter.ts';

/** One request as a viewer sees it. */
export interface TapEvent {
  type: 'request';
  time: string;
  direction: 'inbound' | 'outbound';
  method: string;
  authority: string;
  path: string;
  status: number;
  grpcStatus: string | null;
  latencyMs: number;
  srcService: string;
  dstService: string;
  /** Inbound: the calling workload's identity (mTLS); null when plaintext or unknown. */
  srcIdentity: string | null;
  /** Outbound: the destination's verified identity; null when plaintext or unknown. */
  dstIdentity: string | null;
  tls: boolean;
  route: string;
  endpoint: string | null;
  error: string | null;
  /** Set by the control plane's fan-in: which proxy saw it. */
  proxy?: string;
}

export interface TapViewerOptions {
  filter: TapFilter;
  /** Events per second (default 100). */
  rate?: number;
  /** End the stream after this many events (default: unlimited). */
  limit?: number;
}

export interface TapHubOptions {
  maxViewers?: number;
  /** Bytes a viewer may have unsent before events are dropped (default 64 KiB). */
  maxBuffered?: number;
  /** How often drops are reported in-stream (default 1 s). */
  reportMs?: number;
  now?: () => number;
}

export const DEFAULT_TAP_RATE = 100;
export const MAX_TAP_RATE = 10_000;

/** One connected viewer. */
export class TapViewer {
  sent = 0;
  droppedRate = 0;
  droppedSlow = 0;
  #reportedRate = 0;
  #reportedSlow = 0;
  #tokens: number;
  #last: number;
  readonly #rate: number;
  readonly #limit: number;
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  constructor(
    private readonly hub: TapHub,
    readonly filter: TapFilter,
    private readonly out: ServerResponse,
    opts: TapViewerOptions,
    private readonly maxBuffered: number,
    reportMs: number,
  ) {
    this.#rate = opts.rate ?? DEFAULT_TAP_RATE;
    this.#limit = opts.limit ?? Infinity;
    this.#tokens = this.#rate;
    this.#last = hub.now();
    this.#timer = setInterval(() => this.report(), reportMs);
    this.#timer.unref();
  }

  /** Offer an event (already serialised, shared by all viewers). */
  offer(line: string): void {
    const now = this.hub.now();
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    if (this.#tokens < 1) {
      this.droppedRate++;
      return;
    }
    if (this.out.writableLength > this.maxBuffered) {
      this.droppedSlow++;
      return;
    }
    this.#tokens -= 1;
    this.sent++;
    this.out.write(line);
    if (this.sent >= this.#limit) this.close('limit');
  }

  /** Write the drop counts since the last report, if any. */
  report(): void {
    const rate = this.droppedRate - this.#reportedRate;
    const slow = this.droppedSlow - this.#reportedSlow;
    if (rate === 0 && slow === 0) return;
    this.#reportedRate = this.droppedRate;
    this.#reportedSlow = this.droppedSlow;
    // Reports bypass the buffer cap: they are small and at most one a second.
    this.out.write(
      `${JSON.stringify({ type: 'dropped', count: rate + slow, rateLimited: rate, slowViewer: slow, totalDropped: this.droppedRate + this.droppedSlow })}\n`,
    );
  }

  /** Stop: final counts, end the response. Idempotent. */
  close(reason: 'limit' | 'closed' | 'shutdown'): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.hub.remove(this);
    if (this.out.destroyed || this.out.writableEnded) return;
    this.report();
    this.out.end(
      `${JSON.stringify({ type: 'end', reason, events: this.sent, dropped: this.droppedRate + this.droppedSlow })}\n`,
    );
  }
}

export class TapHub {
  /** True while at least one viewer is connected: the telemetry layer's per-request check. */
  active = false;
  readonly now: () => number;
  readonly #viewers = new Set<TapViewer>();
  readonly #max: number;
  readonly #maxBuffered: number;
  readonly #reportMs: number;

  constructor(opts: TapHubOptions = {}) {
    this.#max = opts.maxViewers ?? 16;
    this.#maxBuffered = opts.maxBuffered ?? 64 * 1024;
    this.#reportMs = opts.reportMs ?? 1000;
    this.now = opts.now ?? performance.now.bind(performance);
  }

  get viewers(): number {
    return this.#viewers.size;
  }

  /** No room for another viewer. */
  get full(): boolean {
    return this.#viewers.size >= this.#max;
  }

  /**
   * Attach a viewer writing NDJSON to `out` (headers already sent by the caller). Throws
   * HEXMESH_ERR_OVERLOADED when `maxViewers` are connected.
   */
  add(out: ServerResponse, opts: TapViewerOptions): TapViewer {
    if (this.#viewers.size >= this.#max)
      throw new HexmeshError('HEXMESH_ERR_OVERLOADED', `tap: ${this.#max} viewers already connected`);
    const v = new TapViewer(this, opts.filter, out, opts, this.#maxBuffered, this.#reportMs);
    this.#viewers.add(v);
    this.active = true;
    out.once('close', () => v.close('closed'));
    return v;
  }

  remove(v: TapViewer): void {
    this.#viewers.delete(v);
    this.active = this.#viewers.size > 0;
  }

  /** One finished request (called by the telemetry layer only while `active`). */
  publish(req: MeshRequest, res: MeshResponse, grpc: number, seconds: number): void {
    const ctx = req.ctx;
    const subject = {
      srcService: ctx.srcService || 'unknown',
      dstService: ctx.dstService || 'unknown',
      path: stripQuery(req.path),
      method: req.method,
      status: res.status,
      direction: ctx.direction,
    };
    let line: string | undefined;
    for (const v of this.#viewers) {
      if (!matches(v.filter, subject)) continue;
      line ??= `${JSON.stringify(toEvent(req, res, grpc, seconds, subject.path))}\n`;
      v.offer(line);
    }
  }

  /** End every viewer's stream. */
  close(): void {
    for (const v of [...this.#viewers]) v.close('shutdown');
  }
}

function stripUserinfo(authority: string): string {
  const at = authority.lastIndexOf('@');
  return at === -1 ? authority : authority.slice(at + 1);
}

function toEvent(req: MeshRequest, res: MeshResponse, grpc: number, seconds: number, path: string): TapEvent {
  const ctx = req.ctx;
  const inbound = ctx.direction === 'inbound';
  return {
    type: 'request',
    time: new Date().toISOString(),
    direction: ctx.direction,
    method: req.method,
    authority: stripUserinfo(req.authority),
    path,
    status: res.status,
    grpcStatus: grpc === -1 ? null : grpcStatusLabel(grpc),
    latencyMs: Math.round(seconds * 1e6) / 1e3,
    srcService: ctx.srcService || 'unknown',
    dstService: ctx.dstService || 'unknown',
    srcIdentity: inbound ? ctx.peerIdentity || null : null,
    dstIdentity: inbound ? null : ctx.peerIdentity || null,
    tls: ctx.tls,
    route: ctx.route,
    endpoint: ctx.endpoint || null,
    error: res.synthetic ?? null,
  };
}
