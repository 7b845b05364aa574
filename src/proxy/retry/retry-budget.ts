/**
 * Retry budget, as Linkerd's (Finagle's RetryBudget): over a sliding window, retries may be at
 * most `percent`% of requests, plus a reserve of `minPerSecond` × window seconds that is always
 * allowed so that low-traffic routes can still retry. This bounds the extra load retries add
 * to a struggling service to a fixed fraction, where per-request attempt counts alone would
 * multiply it.
 */
import type { RetryBudgetOptions } from './resilience-options.ts';

/** Buckets per window: the window slides in steps of window/10. */
const BUCKETS = 10;
const perfNow = (): number => performance.now();

/** A sliding-window retry budget. No timers: buckets roll over lazily on each call. */
export class RetryBudget {
  private readonly bucketMs: number;
  private readonly ratio: number;
  private readonly reserve: number;
  private readonly now: () => number;
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private requestTotal = 0;
  private retryTotal = 0;
  /** Index (time / bucketMs) of the newest bucket. */
  private epoch: number;

  /** @param now clock in ms (performance.now() by default); injectable for tests. */
  constructor(options: RetryBudgetOptions, now: () => number = perfNow) {
    this.bucketMs = Math.max(1, options.window / BUCKETS);
    this.ratio = options.percent / 100;
    this.reserve = options.minPerSecond * (options.window / 1000);
    this.now = now;
    this.epoch = Math.floor(now() / this.bucketMs);
  }

  /** Count one request (not its retries). */
  deposit(): void {
    const i = this.roll();
    this.requests[i]++;
    this.requestTotal++;
  }

  /** Take one retry from the budget; false (and nothing taken) when it is spent. */
  tryWithdraw(): boolean {
    const i = this.roll();
    if (this.retryTotal + 1 > this.requestTotal * this.ratio + this.reserve) return false;
    this.retries[i]++;
    this.retryTotal++;
    return true;
  }

  /** Retries still allowed in the current window (for tests and diagnostics). */
  get available(): number {
    this.roll();
    return Math.max(0, Math.floor(this.requestTotal * this.ratio + this.reserve - this.retryTotal));
  }

  /** Drop buckets that slid out of the window; return the current bucket's index. */
  private roll(): number {
    const e = Math.floor(this.now() / this.bucketMs);
    const steps = e - this.epoch;
    if (steps > 0) {
      const n = Math.min(steps, BUCKETS);
      for (let k = 1; k <= n; k++) {
        const i = slot(this.epoch + k);
        this.requestTotal -= this.requests[i];
        this.retryTotal -= this.retries[i];
        this.requests[i] = 0;
        this.retries[i] = 0;
      }
      this.epoch = e;
    }
    // A clock that went backwards keeps counting in the newest bucket.
    return slot(this.epoch);
  }
}

function slot(epoch: number): number {
  return ((epoch % BUCKETS) + BUCKETS) % BUCKETS;
}
