/**
 * consul-template's `wait {min, max}`: after a change, fire once nothing more has changed
 * for `min`, but never later than `max` after the first change of the burst, so a steady
 * trickle of changes cannot starve the render. Bursts collapse into one fire.
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => Date.now(),
};

export class QuietPeriod {
  readonly #min: number;
  readonly #max: number;
  readonly #fire: () => void;
  readonly #timers: Timers;
  #timer: unknown;
  #burstStart = -1;
  #closed = false;

  /** `max` defaults to 4 × `min` (as consul-template); both 0 fires on the next tick. */
  constructor(minMs: number, maxMs: number | undefined, fire: () => void, timers: Timers = realTimers) {
    if (!(minMs >= 0)) throw new RangeError(`quiet period min must be ≥ 0 ms (got ${minMs})`);
    const max = maxMs ?? 4 * minMs;
    if (!(max >= minMs)) throw new RangeError(`quiet period max (${max} ms) must be ≥ min (${minMs} ms)`);
    this.#min = minMs;
    this.#max = max;
    this.#fire = fire;
    this.#timers = timers;
  }

  /** A change happened: (re)start the quiet timer, bounded by the burst's max. */
  poke(): void {
    if (this.#closed) return;
    const now = this.#timers.now();
    if (this.#burstStart < 0) this.#burstStart = now;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    const delay = Math.max(0, Math.min(this.#min, this.#burstStart + this.#max - now));
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      this.#burstStart = -1;
      this.#fire();
    }, delay);
  }

  get pending(): boolean {
    return this.#timer !== undefined;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
