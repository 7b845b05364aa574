/**
 * The retry loop. A request is tried again only when that is safe (Linkerd/Envoy semantics):
 * - connect failures and refused streams (nothing was sent): always;
 * - a retryable HTTP status, an upstream reset or a per-try timeout: idempotent methods only,
 *   unless the route sets `retryNonIdempotent` (the request may have had effects); a peer
 *   sidecar's 502 `x-hexmesh-error: upstream-reset` counts as an upstream reset;
 * - a configured gRPC status in the response headers (trailers-only response): any gRPC call,
 *   since every gRPC call is a POST and listing statuses is the explicit opt-in;
 * and only while the request body can be replayed, the retry budget allows it, and the backoff
 * ends before the deadline. Each try calls `next` again, so the balancer below picks anew.
 */
import { ERROR_CODES, isSafeToRetry, HexmeshError } from '../../errors/hexmesh-error.ts';
import { sleep, type CancelSignal } from '../core/cancel.ts';
import { header, type Layer, type MeshRequest, type MeshResponse, type Service } from '../core/dispatch.ts';
import { ERROR_HEADER } from '../core/error-response.ts';
import { discardBody } from '../timeout/discard-body.ts';
import { TryScope } from '../timeout/try-scope.ts';
import { ReplayBody } from './replay-body.ts';
import type { RetryOptions, TimeoutOptions } from './resilience-options.ts';
import { RetryBudget } from './retry-budget.ts';

/** Methods that may be repeated without changing the result (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const UPSTREAM_RESET = ERROR_CODES.HEXMESH_ERR_UPSTREAM_RESET.header;

export interface RetryLayerDeps {
  /** Clock in performance.now() ms (ctx.deadline's clock). */
  readonly now?: () => number;
  /** Uniform random in [0, 1), for the backoff jitter. */
  readonly random?: () => number;
  /** Share a budget between layers (e.g. all rules of a route); one per layer otherwise. */
  readonly budget?: RetryBudget;
  /**
   * Concurrent-retry cap of the destination (Envoy's max_retries; `RetryLimiter` in
   * breaker/bulkhead.ts): a slot is held from the decision to retry until that try ends.
   */
  readonly limiter?: { tryAcquire(): boolean; release(): void };
}

const perfNow = (): number => performance.now();
/**
 * Least time left for a retry to be worth starting. Node timers have 1 ms granularity and may
 * fire up to 1 ms early against performance.now(), which would otherwise start a sub-ms try.
 */
const MIN_TRY_MS = 1;

/**
 * Full-jitter backoff before retry `n` (1 for the first retry): uniform in
 * [0, min((2^n − 1) · base, max)) ms (AWS "full jitter", Envoy's defaults 25 ms / 250 ms).
 */
export function backoffDelay(n: number, base: number, max: number, random: () => number): number {
  const ceiling = Math.min((2 ** n - 1) * base, max);
  return random() * ceiling;
}

/** What a try's outcome allows: no retry, a retry of any method, or of idempotent ones only. */
const Verdict = { No: 0, Any: 1, Idempotent: 2 } as const;
type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** The per-try timeout to run, or 0 when the request timeout already covers every try. */
function perTryTimeout(t: Pick<TimeoutOptions, 'request' | 'perTry'>): number {
  return t.perTry > 0 && (t.request === 0 || t.perTry < t.request) ? t.perTry : 0;
}

/** Pre-built per-layer state; `call` is the per-request loop. */
class Retrier {
  private readonly statusTable = new Uint8Array(600);
  private readonly grpcTable = new Uint8Array(17);
  private readonly hasGrpc: boolean;
  private readonly onReset: boolean;
  private readonly perTry: number;
  private readonly now: () => number;
  private readonly random: () => number;
  readonly budget: RetryBudget;
  private readonly limiter: RetryLayerDeps['limiter'];

  constructor(
    private readonly next: Service,
    private readonly opts: RetryOptions,
    timeouts: Pick<TimeoutOptions, 'request' | 'perTry'>,
    deps: RetryLayerDeps,
  ) {
    const on = new Set(opts.on);
    for (const c of opts.codes) this.statusTable[c] = 1;
    if (on.has('5xx')) this.statusTable.fill(1, 500, 600);
    if (on.has('gateway-error')) this.statusTable[502] = this.statusTable[503] = this.statusTable[504] = 1;
    for (const g of opts.grpcStatuses) this.grpcTable[g] = 1;
    this.hasGrpc = opts.grpcStatuses.length > 0;
    // Envoy counts resets under 5xx and gateway-error too.
    this.onReset = on.has('reset') || on.has('5xx') || on.has('gateway-error');
    this.perTry = perTryTimeout(timeouts);
    this.now = deps.now ?? perfNow;
    this.random = deps.random ?? Math.random;
    this.budget = deps.budget ?? new RetryBudget(opts.budget, this.now);
    this.limiter = deps.limiter;
  }

  async call(req: MeshRequest): Promise<MeshResponse> {
    const ctx = req.ctx;
    const opts = this.opts;
    this.budget.deposit();
    const parent = ctx.trySignal ?? ctx.signal;
    const replay = req.body && opts.attempts > 0 ? new ReplayBody(req.body, opts.maxReplayBytes) : null;
    let limited = false;
    for (let attempt = 0; ; attempt++) {
      ctx.attempt = attempt;
      ctx.trySignal = parent;
      if (replay) req.body = replay.stream();

      let scope: TryScope | null = null;
      let res: MeshResponse | undefined;
      let err: unknown;
      try {
        if (this.perTry > 0) {
          const ms = Math.max(0, Math.min(this.perTry, ctx.deadline - this.now()));
          scope = new TryScope(parent);
          res = await scope.run(this.next, req, ms, 'try');
        } else res = await this.next(req);
      } catch (e) {
        err = e;
      }
      if (limited) {
        limited = false;
        this.limiter!.release();
      }

      const verdict =
        attempt >= opts.attempts || parent.aborted
          ? Verdict.No
          : res
            ? this.judgeResponse(req, res)
            : this.judgeError(err, scope);
      if (
        verdict === Verdict.No ||
        (verdict === Verdict.Idempotent && !opts.retryNonIdempotent && !IDEMPOTENT.has(req.method)) ||
        (replay !== null && !replay.replayable)
      )
        return finish(res, err);
      const wait = backoffDelay(attempt + 1, opts.backoff.base, opts.backoff.max, this.random);
      // The request timeout covers every try and backoff (Gateway API): a retry the deadline
      // leaves no time for ends the request as a timeout, as Envoy's route timeout firing
      // during the backoff does — not with the outcome that asked for the retry.
      if (this.now() + wait + MIN_TRY_MS > ctx.deadline) {
        discardBody(res?.body);
        scope?.release();
        return this.outOfTime(req, parent);
      }
      if (this.limiter) {
        if (!this.limiter.tryAcquire()) return finish(res, err);
        limited = true;
      }
      if (!this.budget.tryWithdraw()) {
        ctx.notes.budgetExhausted = true;
        if (limited) this.limiter!.release();
        return finish(res, err);
      }

      // Throw this outcome away: free the response's stream and abort its try.
      discardBody(res?.body);
      scope?.release();
      ctx.notes.retries = attempt + 1;
      if (wait > 0) await sleep(wait, parent);
      if (parent.aborted) {
        if (limited) this.limiter!.release();
        throw parent.reason;
      }
    }
  }

  /**
   * Wait out the deadline and fail with the timeout that ends it: the request timeout layer's
   * (it aborts `parent` then), or HEXMESH_ERR_TIMEOUT where nothing aborts at the deadline (a
   * caller's gRPC deadline alone).
   */
  private async outOfTime(req: MeshRequest, parent: CancelSignal): Promise<never> {
    const ctx = req.ctx;
    const left = ctx.deadline - this.now();
    if (left > 0) await sleep(left, parent);
    if (parent.aborted) throw parent.reason;
    throw new HexmeshError(
      'HEXMESH_ERR_TIMEOUT',
      `timeout calling ${ctx.dstService}: no time left for retry ${ctx.attempt + 1}`,
      { context: { service: ctx.dstService, timeout: 'request' } },
    );
  }

  private judgeResponse(req: MeshRequest, res: MeshResponse): Verdict {
    if (this.statusTable[res.status] === 1) return Verdict.Idempotent;
    // The peer sidecar's own upstream reset before any response byte (its synthetic 502) is a
    // reset of this request too: retried as one, idempotent methods only.
    if (
      this.onReset &&
      res.status === 502 &&
      res.synthetic === undefined &&
      header(res.headers, ERROR_HEADER) === UPSTREAM_RESET
    )
      return Verdict.Idempotent;
    if (req.grpc && this.hasGrpc) {
      const gs = header(res.headers, 'grpc-status');
      if (gs !== undefined && this.grpcTable[Number(gs)] === 1) return Verdict.Any;
    }
    return Verdict.No;
  }

  private judgeError(err: unknown, scope: TryScope | null): Verdict {
    if (isSafeToRetry(err)) return Verdict.Any;
    if (scope !== null && err === scope.timeoutError) return Verdict.Idempotent;
    if (this.onReset && err instanceof HexmeshError && err.code === 'HEXMESH_ERR_UPSTREAM_RESET')
      return Verdict.Idempotent;
    return Verdict.No;
  }
}

function finish(res: MeshResponse | undefined, err: unknown): MeshResponse {
  if (res) return res;
  throw err;
}

/**
 * Build the retry layer for one route rule. It sets `ctx.attempt` per try, `ctx.notes.retries`
 * (retries made) and `ctx.notes.budgetExhausted`, runs the per-try timeout (`timeouts.perTry`,
 * when shorter than the request timeout) with its own `ctx.trySignal`, and replays request bodies
 * up to `maxReplayBytes`. Place it inside the request timeout layer, above the balancer.
 */
export function retryLayer(
  options: { readonly retry: RetryOptions; readonly timeouts: Pick<TimeoutOptions, 'request' | 'perTry'> },
  deps: RetryLayerDeps = {},
): Layer {
  return (next: Service): Service => {
    if (options.retry.attempts === 0 && perTryTimeout(options.timeouts) === 0) return next;
    const r = new Retrier(next, options.retry, options.timeouts, deps);
    return (req) => r.call(req);
  };
}
