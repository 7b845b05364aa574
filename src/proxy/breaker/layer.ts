/**
 * The Hystrix flow as one layer, per destination (and per route when a policy targets one):
 *
 *   1. circuit open?   → fallback (`circuit-open`) or HEXMESH_ERR_CIRCUIT_OPEN
 *   2. bulkhead full?  → fallback (`overloaded`) or HEXMESH_ERR_OVERLOADED
 *   3. execute (the timeout layer inside bounds it)
 *   4. record the outcome: thrown error or status ≥ 500 = failure, HEXMESH_ERR_TIMEOUT =
 *      timeout, gRPC status 4/8/13/14 = failure, time to headers ≥ slowCallDuration = slow
 *   5. failure or timeout → fallback if configured, else pass the error or response on.
 *
 * A streamed response holds its bulkhead slot, and its outcome stays open, until its body
 * ends or fails: that is when gRPC trailers exist. The body is never buffered; the layer
 * only listens to its end. Slot release and outcome recording happen exactly once, also
 * when the client goes away (then the call is not counted against the destination).
 */
import type { Readable } from 'node:stream';
import { header, type Layer, type MeshRequest, type MeshResponse, type Service } from '../core/dispatch.ts';
import { ERROR_CODES, HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Bulkhead } from './bulkhead.ts';
import type { CallOutcome, CircuitBreaker, Permit } from './circuit-breaker.ts';
import type { Fallback, FallbackReason } from './fallback.ts';
import { discardBody } from '../timeout/discard-body.ts';

export interface BreakerLayerOptions {
  breaker?: CircuitBreaker;
  bulkhead?: Bulkhead;
  fallback?: Fallback;
  /** Destination name for error messages. */
  service: string;
  /** Clock for call durations (default `performance.now`); share the breaker's fake one in tests. */
  now?: () => number;
}

/** gRPC statuses that mean the destination is unwell (deadline-exceeded, resource-exhausted, internal, unavailable). */
const GRPC_FAILURE = new Set(['4', '8', '13', '14']);

const kCall = Symbol('hexmesh.breaker.call');
type TrackedBody = Readable & { [kCall]?: InFlight };

/**
 * A call whose response body is still streaming. One small object per streamed response;
 * the stream listeners are shared module functions that find it through the body.
 */
class InFlight {
  private done = false;
  constructor(
    private readonly permit: Permit | undefined,
    private readonly bulkhead: Bulkhead | undefined,
    /** Outcome known from the status line; a gRPC trailer may still turn it into a failure. */
    private readonly verdict: CallOutcome,
    private readonly durationMs: number,
    private readonly res: MeshResponse,
    private readonly req: MeshRequest,
  ) {}

  ended(): void {
    let outcome = this.verdict;
    if (this.req.grpc && outcome === 'success' && this.res.trailers) {
      const status = header(this.res.trailers, 'grpc-status');
      if (status !== undefined && GRPC_FAILURE.has(status)) outcome = 'failure';
    }
    this.finish(outcome);
  }

  /** Closed or errored before the end: the upstream broke off, unless the client went first. */
  broken(err: unknown): void {
    if (this.done) return;
    this.finish(this.req.ctx.signal.aborted || err === undefined || err === null ? undefined : 'failure');
  }

  finish(outcome: CallOutcome | undefined): void {
    if (this.done) return;
    this.done = true;
    settle(this.permit, this.bulkhead, outcome, this.durationMs);
  }
}

function onBodyEnd(this: TrackedBody): void {
  this[kCall]?.ended();
}

function onBodyError(this: TrackedBody, err: unknown): void {
  this[kCall]?.broken(err ?? new Error('response body failed'));
}

function onBodyClose(this: TrackedBody): void {
  const call = this[kCall];
  if (!call) return;
  // 'close' after 'end' is a no-op (finish is idempotent); before it, a destroy.
  if (this.readableEnded) call.ended();
  else call.broken(this.errored);
}

/** Record the outcome (or not count it) and free the bulkhead slot: the one exit of every call. */
function settle(
  permit: Permit | undefined,
  bulkhead: Bulkhead | undefined,
  outcome: CallOutcome | undefined,
  durationMs: number,
): void {
  bulkhead?.release();
  if (!permit) return;
  if (outcome === undefined) permit.cancel();
  else permit.record(outcome, durationMs);
}

/** What a thrown error says about the destination; undefined = nothing (not counted). */
function classifyError(err: unknown, req: MeshRequest): CallOutcome | undefined {
  if (req.ctx.signal.aborted) return undefined;
  if (err instanceof HexmeshError) {
    if (err.code === 'HEXMESH_ERR_TIMEOUT') return 'timeout';
    // Refusals made on this side (bad request, denied, rate limited) are not the
    // destination's fault, as Hystrix's HystrixBadRequestException.
    if (ERROR_CODES[err.code].status < 500) return undefined;
  }
  return 'failure';
}

function classifyResponse(res: MeshResponse, req: MeshRequest): CallOutcome {
  if (res.status >= 500) return 'failure';
  if (req.grpc) {
    // Trailers-only responses carry grpc-status in the headers.
    const status = header(res.headers, 'grpc-status');
    if (status !== undefined && GRPC_FAILURE.has(status)) return 'failure';
  }
  return 'success';
}

class BreakerFlow {
  private readonly breaker: CircuitBreaker | undefined;
  private readonly bulkhead: Bulkhead | undefined;
  private readonly fallback: Fallback | undefined;
  private readonly service: string;
  private readonly now: () => number;

  constructor(
    private readonly next: Service,
    opts: BreakerLayerOptions,
  ) {
    this.breaker = opts.breaker;
    this.bulkhead = opts.bulkhead;
    this.fallback = opts.fallback;
    this.service = opts.service;
    this.now = opts.now ?? (() => performance.now());
  }

  async call(req: MeshRequest): Promise<MeshResponse> {
    let permit: Permit | undefined;
    if (this.breaker) {
      permit = this.breaker.tryAcquire();
      if (!permit) return this.refuse(req, 'circuit-open', this.circuitOpen());
    }

    const bulkhead = this.bulkhead;
    if (bulkhead && !bulkhead.tryAcquire()) {
      const wait = bulkhead.enqueue(req.ctx.signal, req.ctx.deadline);
      if (!wait) {
        // Hystrix counts a rejection as an error in the window.
        permit?.record('rejected', 0);
        return this.refuse(req, 'overloaded', this.overloaded(bulkhead));
      }
      try {
        await wait;
      } catch (err) {
        // No slot was taken, so only the permit is settled.
        if (req.ctx.signal.aborted) {
          permit?.cancel();
          throw err;
        }
        permit?.record('timeout', 0);
        return this.refuse(req, 'timeout', err);
      }
    }

    const start = this.now();
    let res: MeshResponse;
    try {
      res = await this.next(req);
    } catch (err) {
      const outcome = classifyError(err, req);
      settle(permit, bulkhead, outcome, this.now() - start);
      if (outcome !== undefined && this.fallback)
        return this.useFallback(req, outcome === 'timeout' ? 'timeout' : 'failure');
      throw err;
    }
    const durationMs = this.now() - start;
    const verdict = classifyResponse(res, req);

    if (verdict === 'failure' && this.fallback && !req.ctx.signal.aborted) {
      settle(permit, bulkhead, verdict, durationMs);
      // Not destroy(): an HTTP/1 body emits 'error' on destroy, and nothing listens to it here.
      discardBody(res.body);
      return this.useFallback(req, 'failure');
    }

    const body = res.body as TrackedBody | null;
    if ((!permit && !bulkhead) || !body) {
      settle(permit, bulkhead, verdict, durationMs);
      return res;
    }
    const call = new InFlight(permit, bulkhead, verdict, durationMs, res, req);
    if (body.readableEnded) {
      call.ended();
      return res;
    }
    if (body.destroyed) {
      call.broken(body.errored);
      return res;
    }
    body[kCall] = call;
    body.on('end', onBodyEnd);
    body.on('error', onBodyError);
    body.on('close', onBodyClose);
    return res;
  }

  private refuse(req: MeshRequest, reason: FallbackReason, err: unknown): Promise<MeshResponse> {
    if (this.fallback) return this.useFallback(req, reason);
    return Promise.reject(err);
  }

  private useFallback(req: MeshRequest, reason: FallbackReason): Promise<MeshResponse> {
    req.ctx.notes.fallback = reason;
    return this.fallback!(req, reason);
  }

  private circuitOpen(): HexmeshError {
    return new HexmeshError('HEXMESH_ERR_CIRCUIT_OPEN', `circuit open for ${this.service}`, {
      context: { service: this.service },
    });
  }

  private overloaded(b: Bulkhead): HexmeshError {
    return new HexmeshError(
      'HEXMESH_ERR_OVERLOADED',
      `too many requests to ${this.service} (max ${b.maxRequests} concurrent, ${b.maxPending} pending)`,
      { context: { service: this.service, maxRequests: b.maxRequests, maxPending: b.maxPending } },
    );
  }
}

/**
 * The circuit breaker, bulkhead and fallback of one destination as a layer. Build it once
 * per destination (or route) when config changes: the breaker and bulkhead it is given
 * hold the state that must outlive a single request.
 */
export function breakerLayer(opts: BreakerLayerOptions): Layer {
  return (next) => {
    const flow = new BreakerFlow(next, opts);
    return (req) => flow.call(req);
  };
}
