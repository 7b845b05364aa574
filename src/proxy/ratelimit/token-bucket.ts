/**
 * A token bucket (Envoy local_ratelimit): holds at most `maxTokens`, gains `tokensPerFill` every
 * `fillInterval` ms, starts full. Refill is computed lazily from the clock on each take, so the
 * bucket needs no timer and nothing to close.
 */
import type { RateLimitOptions } from '../retry/resilience-options.ts';

const perfNow = (): number => performance.now();

export class TokenBucket {
  private tokens: number;
  /** Time of the last whole fill; partial intervals carry over to the next take. */
  private lastFill: number;
  private readonly max: number;
  private readonly perFill: number;
  private readonly interval: number;
  private readonly now: () => number;

  /** @param now clock in ms (performance.now() by default); injectable for tests. */
  constructor(options: RateLimitOptions, now: () => number = perfNow) {
    this.max = options.maxTokens;
    this.perFill = options.tokensPerFill;
    this.interval = options.fillInterval;
    this.now = now;
    this.tokens = options.maxTokens;
    this.lastFill = now();
  }

  /** Take one token; false when the bucket is empty. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** Tokens available now. */
  get available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const t = this.now();
    if (this.interval <= 0) {
      this.tokens = this.max;
      this.lastFill = t;
      return;
    }
    const fills = Math.floor((t - this.lastFill) / this.interval);
    if (fills <= 0) return;
    this.lastFill += fills * this.interval;
    this.tokens = Math.min(this.max, this.tokens + fills * this.perFill);
  }
}
