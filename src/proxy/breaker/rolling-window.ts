/**
 * A bucketed rolling window of call outcomes, as Hystrix's HystrixRollingNumber: the
 * window (default 10 s) is cut into buckets (default 10 of 1 s); the oldest bucket is
 * dropped whole as time moves on, so "the last window" means the current bucket plus the
 * `buckets − 1` before it. Running totals are kept so reading them is O(1); buckets are
 * only rotated when the window is touched, so an idle window costs nothing.
 */

/** What happened to one call, as counted in the window. */
export type WindowEvent = 'success' | 'failure' | 'timeout' | 'rejection';

/** Totals over the current window. */
export interface WindowCounts {
  success: number;
  failure: number;
  timeout: number;
  /** Calls refused by the bulkhead (Hystrix's semaphore/thread-pool rejections). */
  rejection: number;
  /** Calls that took at least `slowCallDuration`, whatever their outcome. */
  slow: number;
}

// Column offsets in the flat counter array: one row of five counters per bucket.
const SUCCESS = 0;
const FAILURE = 1;
const TIMEOUT = 2;
const REJECTION = 3;
const SLOW = 4;
const COLUMNS = 5;
const COLUMN: Readonly<Record<WindowEvent, number>> = {
  success: SUCCESS,
  failure: FAILURE,
  timeout: TIMEOUT,
  rejection: REJECTION,
};

export interface RollingWindowOptions {
  /** Window length in ms (default 10 000). */
  window?: number;
  /** Number of buckets the window is cut into (default 10). */
  buckets?: number;
  /** Clock in ms; monotonic (default `performance.now`). */
  now?: () => number;
}

export class RollingWindow {
  readonly windowMs: number;
  readonly bucketCount: number;
  readonly bucketMs: number;
  private readonly now: () => number;
  // Flat rows of counters, one row per bucket slot, so recording allocates nothing.
  private readonly counters: Float64Array;
  private readonly totals = new Float64Array(COLUMNS);
  /** Absolute bucket number (floor(time / bucketMs)) of the newest bucket. */
  private head: number;

  constructor(opts: RollingWindowOptions = {}) {
    this.windowMs = opts.window ?? 10_000;
    this.bucketCount = opts.buckets ?? 10;
    if (!(this.windowMs > 0)) throw new RangeError(`window must be > 0 ms, got ${this.windowMs}`);
    if (!Number.isInteger(this.bucketCount) || this.bucketCount < 1)
      throw new RangeError(`buckets must be an integer ≥ 1, got ${this.bucketCount}`);
    this.bucketMs = this.windowMs / this.bucketCount;
    this.now = opts.now ?? (() => performance.now());
    this.counters = new Float64Array(this.bucketCount * COLUMNS);
    this.head = Math.floor(this.now() / this.bucketMs);
  }

  /** Count one event now; `slow` also counts it as a slow call. */
  record(event: WindowEvent, slow = false): void {
    const row = this.advance() * COLUMNS;
    const col = COLUMN[event];
    this.counters[row + col]++;
    this.totals[col]++;
    if (slow) {
      this.counters[row + SLOW]++;
      this.totals[SLOW]++;
    }
  }

  /** Totals over the window ending now. */
  counts(): WindowCounts {
    this.advance();
    const t = this.totals;
    return {
      success: t[SUCCESS],
      failure: t[FAILURE],
      timeout: t[TIMEOUT],
      rejection: t[REJECTION],
      slow: t[SLOW],
    };
  }

  /** success + failure + timeout + rejection over the window (Hystrix's total request count). */
  total(): number {
    this.advance();
    const t = this.totals;
    return t[SUCCESS] + t[FAILURE] + t[TIMEOUT] + t[REJECTION];
  }

  /** Raw total of one column, for the breaker's trip check without allocating. */
  get(event: WindowEvent | 'slow'): number {
    this.advance();
    return this.totals[event === 'slow' ? SLOW : COLUMN[event]];
  }

  /** Forget everything (the circuit closed again: Hystrix resets its metrics). */
  reset(): void {
    this.counters.fill(0);
    this.totals.fill(0);
    this.head = Math.floor(this.now() / this.bucketMs);
  }

  /** Rotate to the current bucket, dropping expired ones; returns the current slot. */
  private advance(): number {
    const bucket = Math.floor(this.now() / this.bucketMs);
    const n = this.bucketCount;
    // A clock that steps backwards keeps writing into the newest bucket.
    if (bucket > this.head) {
      if (bucket - this.head >= n) {
        this.counters.fill(0);
        this.totals.fill(0);
      } else {
        for (let b = this.head + 1; b <= bucket; b++) this.clearSlot(slotOf(b, n));
      }
      this.head = bucket;
    }
    return slotOf(this.head, n);
  }

  private clearSlot(slot: number): void {
    const row = slot * COLUMNS;
    for (let c = 0; c < COLUMNS; c++) {
      this.totals[c] -= this.counters[row + c];
      this.counters[row + c] = 0;
    }
  }
}

/** Ring slot of an absolute bucket number (non-negative even for a clock below zero). */
function slotOf(bucket: number, n: number): number {
  return ((bucket % n) + n) % n;
}
