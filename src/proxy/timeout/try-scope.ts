/**
 * One timed call of an inner service: its own {@link Cancel} (published as `ctx.trySignal`),
 * chained to the signal in effect outside it, and one timer that fails the call with
 * HEXMESH_ERR_TIMEOUT if no response headers came in time. Used by the timeout layer (the request
 * timeout) and by the retry layer (the per-try timeout).
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { Cancel, type CancelSignal } from '../core/cancel.ts';
import type { MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { discardBody } from './discard-body.ts';

/** Which timeout a scope enforces; reported in the error's context as `timeout`. */
export type TimeoutKind = 'request' | 'try';

/** setTimeout overflows past 2^31 − 1 ms (it then fires at once); such timeouts are "none". */
const MAX_TIMER_MS = 2_147_483_647;

// Pre-built callbacks: the scope travels as the timer argument, so a try allocates no closure
// for its timer.
function onTimer(scope: TryScope): void {
  scope.expire();
}

/**
 * An abort scope for one call. It listens to the outer signal as an EventListenerObject (no
 * closure). After response headers arrive it keeps forwarding the outer abort, so a downstream
 * that goes away still stops the response stream; `release()` ends that for a response the
 * caller throws away. Once the call is over (released, failed, or its parent cleared) nothing
 * links the parent's signal to this scope.
 */
export class TryScope {
  readonly signal = new Cancel();
  /** The error this scope failed its call with, so a caller can tell its own timeout apart. */
  timeoutError: HexmeshError | undefined;
  private readonly parent: CancelSignal;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;
  private listening = false;
  private ms = 0;
  private kind: TimeoutKind = 'request';
  private service = '';
  private resolve: ((r: MeshResponse) => void) | undefined;
  private reject: ((e: unknown) => void) | undefined;

  constructor(parent: CancelSignal) {
    this.parent = parent;
    if (parent.aborted) this.signal.abort(parent.reason);
    else {
      parent.addEventListener('abort', this);
      this.listening = true;
    }
  }

  /** The outer signal aborted: abort this call, and fail it now if it is still waiting. */
  handleEvent(): void {
    this.listening = false;
    const reason: unknown = this.parent.reason;
    this.signal.abort(reason);
    if (!this.settled) this.fail(reason);
  }

  /**
   * Call `next` with `ctx.trySignal` set to this scope's signal; reject with
   * HEXMESH_ERR_TIMEOUT after `ms` unless headers arrived. A response that arrives after the
   * timeout has its body destroyed.
   */
  run(next: Service, req: MeshRequest, ms: number, kind: TimeoutKind): Promise<MeshResponse> {
    const signal = this.signal;
    req.ctx.trySignal = signal;
    if (signal.aborted) return Promise.reject(signal.reason);
    this.ms = ms;
    this.kind = kind;
    this.service = req.ctx.dstService;
    let inner: Promise<MeshResponse>;
    try {
      inner = next(req);
    } catch (err) {
      inner = Promise.reject(err);
    }
    // One promise and its executor per timed call is the price of racing a timer.
    const done = new Promise<MeshResponse>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    if (ms <= MAX_TIMER_MS) this.timer = setTimeout(onTimer, ms, this);
    inner.then(
      (r) => this.onResponse(r),
      (e) => this.fail(e),
    );
    return done;
  }

  /** The timer fired before headers: fail the call and abort the inner try. */
  expire(): void {
    this.timer = undefined;
    if (this.settled) return;
    const ms = Math.round(this.ms);
    const err = new HexmeshError('HEXMESH_ERR_TIMEOUT', `timeout after ${ms} ms calling ${this.service}`, {
      context: { service: this.service, timeoutMs: ms, timeout: this.kind },
    });
    this.timeoutError = err;
    this.signal.abort(err);
    this.fail(err);
  }

  /**
   * Drop this call: stop forwarding the outer abort, clear the timer and abort the try (its
   * response is being thrown away, e.g. for a retry). Idempotent.
   */
  release(): void {
    this.detach();
    this.signal.abort();
  }

  private onResponse(r: MeshResponse): void {
    if (this.settled) {
      // Too late: nobody reads this response, so free its connection/stream now.
      discardBody(r.body);
      return;
    }
    this.settled = true;
    this.clearTimer();
    const resolve = this.resolve!;
    this.resolve = this.reject = undefined;
    resolve(r);
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.detach();
    const reject = this.reject;
    this.resolve = this.reject = undefined;
    reject?.(err);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private detach(): void {
    this.clearTimer();
    if (this.listening) {
      this.listening = false;
      this.parent.removeEventListener('abort', this);
    }
  }
}
