/**
 * The bulkhead of the Hystrix flow: at most `maxRequests` calls in flight to a
 * destination, at most `maxPending` more waiting in a FIFO queue, anything beyond refused
 * at once (Envoy's max_requests / max_pending_requests, 1024 each by default).
 *
 * The fast path is synchronous ({@link Bulkhead.tryAcquire}); only a caller that has to
 * queue gets a promise. A released slot is handed straight to the oldest waiter, so a
 * burst of new arrivals cannot overtake the queue.
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { CancelSignal } from '../core/cancel.ts';

export interface BulkheadOptions {
  /** Calls allowed in flight at once (default 1024). */
  maxRequests?: number;
  /** Calls allowed to wait for a slot (default 1024; 0 refuses as soon as all slots are busy). */
  maxPending?: number;
  /** Clock of request deadlines (default `performance.now`, as RequestContext.deadline). */
  now?: () => number;
  /** Destination name, for error messages. */
  service?: string;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export const BULKHEAD_DEFAULTS = Object.freeze({ maxRequests: 1024, maxPending: 1024, maxRetries: 3 });

/** One queued caller: a node of a doubly linked list, so an abort unlinks it in O(1). */
class Waiter {
  prev: Waiter | null = null;
  next: Waiter | null = null;
  timer: NodeJS.Timeout | undefined = undefined;
  linked = false;
  constructor(
    readonly owner: Bulkhead,
    readonly signal: CancelSignal,
    readonly resolve: () => void,
    readonly reject: (err: unknown) => void,
  ) {}

  /** EventListener interface: the waiter itself is the abort listener, no closure needed. */
  handleEvent(): void {
    this.owner.abandon(this, this.signal.reason);
  }
}

function onWaiterTimeout(w: Waiter): void {
  w.timer = undefined;
  w.owner.abandon(w, queueTimeout(w.owner.service));
}

function queueTimeout(service: string): HexmeshError {
  return new HexmeshError('HEXMESH_ERR_TIMEOUT', `request deadline passed while queued for ${service}`, {
    context: { service },
  });
}

export class Bulkhead {
  readonly maxRequests: number;
  readonly maxPending: number;
  readonly service: string;
  private readonly now: () => number;
  private inFlight = 0;
  private queued = 0;
  private head: Waiter | null = null;
  private tail: Waiter | null = null;
  private closed = false;

  constructor(opts: BulkheadOptions = {}) {
    this.maxRequests = opts.maxRequests ?? BULKHEAD_DEFAULTS.maxRequests;
    this.maxPending = opts.maxPending ?? BULKHEAD_DEFAULTS.maxPending;
    if (!Number.isInteger(this.maxRequests) || this.maxRequests < 1)
      throw new RangeError(`maxRequests must be an integer ≥ 1, got ${this.maxRequests}`);
    if (!Number.isInteger(this.maxPending) || this.maxPending < 0)
      throw new RangeError(`maxPending must be an integer ≥ 0, got ${this.maxPending}`);
    this.service = opts.service ?? 'upstream';
    this.now = opts.now ?? (() => performance.now());
  }

  /** Calls holding a slot. */
  get active(): number {
    return this.inFlight;
  }

  /** Calls waiting for a slot. */
  get pending(): number {
    return this.queued;
  }

  /** Take a slot if one is free right now (and nobody is queued ahead). */
  tryAcquire(): boolean {
    if (this.closed || this.inFlight >= this.maxRequests || this.head !== null) return false;
    this.inFlight++;
    return true;
  }

  /**
   * Wait in line for a slot. Returns `undefined` when the queue is full (refuse the call
   * now); otherwise a promise that resolves once the caller holds a slot, or rejects when
   * `signal` aborts (with its reason) or `deadline` (performance.now() ms) passes
   * (HEXMESH_ERR_TIMEOUT). Call {@link tryAcquire} first: this always queues.
   */
  enqueue(signal: CancelSignal, deadline = Infinity): Promise<void> | undefined {
    if (this.closed || this.queued >= this.maxPending) return undefined;
    if (signal.aborted) return Promise.reject(signal.reason);
    const ms = deadline - this.now();
    if (ms <= 0) return Promise.reject(queueTimeout(this.service));
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const w = new Waiter(this, signal, resolve, reject);
    // Beyond setTimeout's range (~24.8 days) a deadline is as good as none.
    if (ms <= MAX_TIMER_MS) w.timer = setTimeout(onWaiterTimeout, ms, w);
    signal.addEventListener('abort', w, { once: true });
    w.linked = true;
    w.prev = this.tail;
    if (this.tail) this.tail.next = w;
    else this.head = w;
    this.tail = w;
    this.queued++;
    return promise;
  }

  /** Give a slot back. Call exactly once per successful acquire. */
  release(): void {
    const w = this.head;
    if (w && !this.closed) {
      // Hand the slot over: in-flight count stays the same.
      this.unlink(w);
      w.resolve();
      return;
    }
    if (this.inFlight > 0) this.inFlight--;
  }

  /** Refuse new calls and fail every queued one with HEXMESH_ERR_DRAINING. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    while (this.head) {
      const w = this.head;
      this.unlink(w);
      w.reject(
        new HexmeshError('HEXMESH_ERR_DRAINING', `bulkhead for ${this.service} closed while queued`, {
          context: { service: this.service },
        }),
      );
    }
  }

  /** @internal A queued waiter gave up (abort or deadline). */
  abandon(w: Waiter, reason: unknown): void {
    // Unlinking removes the abort listener and timer, so a granted waiter never gets here.
    if (!w.linked) return;
    this.unlink(w);
    w.reject(reason);
  }

  private unlink(w: Waiter): void {
    if (w.prev) w.prev.next = w.next;
    else this.head = w.next;
    if (w.next) w.next.prev = w.prev;
    else this.tail = w.prev;
    w.prev = w.next = null;
    w.linked = false;
    this.queued--;
    if (w.timer !== undefined) clearTimeout(w.timer);
    w.timer = undefined;
    w.signal.removeEventListener('abort', w);
  }
}

/**
 * Concurrent-retry limit for one destination (Envoy's max_retries, default 3). The retry
 * layer asks before each retry and releases when that try ends.
 */
export class RetryLimiter {
  readonly maxRetries: number;
  private inFlight = 0;

  constructor(maxRetries: number = BULKHEAD_DEFAULTS.maxRetries) {
    if (!Number.isInteger(maxRetries) || maxRetries < 0)
      throw new RangeError(`maxRetries must be an integer ≥ 0, got ${maxRetries}`);
    this.maxRetries = maxRetries;
  }

  /** Retries in flight. */
  get active(): number {
    return this.inFlight;
  }

  /** Take a retry slot; false means do not retry now. */
  tryAcquire(): boolean {
    if (this.inFlight >= this.maxRetries) return false;
    this.inFlight++;
    return true;
  }

  /** Give a retry slot back; once per successful tryAcquire. */
  release(): void {
    if (this.inFlight > 0) this.inFlight--;
  }
}

/** Build the bulkhead and retry limiter from a TrafficPolicy's `connectionPool` (Envoy defaults). */
export function bulkheadFromSpec(
  pool: { maxRequests?: number; maxPendingRequests?: number; maxRetries?: number } | undefined,
  service: string,
): { bulkhead: Bulkhead; retries: RetryLimiter } {
  return {
    bulkhead: new Bulkhead({ maxRequests: pool?.maxRequests, maxPending: pool?.maxPendingRequests, service }),
    retries: new RetryLimiter(pool?.maxRetries),
  };
}
