/**
 * When to restart a process that exited, and when to call it a crash loop. Exponential
 * backoff (1 s doubling to 30 s, as systemd/Kubernetes' CrashLoopBackOff) reset after a
 * run that lasted longer than the maximum backoff; ≥ `crashLoopRestarts` restarts within
 * `crashLoopWindow` is a crash loop: the state says so and every further restart waits the
 * full maximum backoff, so a broken command is never restarted at full speed.
 */

export interface RestartPolicyOptions {
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  crashLoopRestarts?: number;
  crashLoopWindowMs?: number;
  /** Injected clock (tests). */
  now?: () => number;
}

export interface RestartDecision {
  /** Wait this long before starting again. */
  delayMs: number;
  /** The process is crash-looping (≥ N restarts within the window). */
  crashLoop: boolean;
  /** Restarts so far, this one included. */
  restarts: number;
}

export class RestartPolicy {
  readonly #initial: number;
  readonly #max: number;
  readonly #loopRestarts: number;
  readonly #loopWindow: number;
  readonly #now: () => number;
  /** Times of recent restarts (within the window). */
  #recent: number[] = [];
  #consecutive = 0;
  #restarts = 0;
  #startedAt: number | undefined;

  constructor(o: RestartPolicyOptions = {}) {
    this.#initial = o.initialBackoffMs ?? 1000;
    this.#max = Math.max(this.#initial, o.maxBackoffMs ?? 30_000);
    this.#loopRestarts = o.crashLoopRestarts ?? 5;
    this.#loopWindow = o.crashLoopWindowMs ?? 60_000;
    this.#now = o.now ?? Date.now;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** True while the recent restarts reach the crash-loop threshold. */
  get crashLooping(): boolean {
    this.#prune();
    return this.#recent.length >= this.#loopRestarts;
  }

  /** The process (re)started now. */
  started(): void {
    this.#startedAt = this.#now();
  }

  /** The process exited: how long to wait before restarting it. */
  exited(): RestartDecision {
    const now = this.#now();
    // A run longer than the longest backoff was healthy enough: start the ladder again.
    if (this.#startedAt !== undefined && now - this.#startedAt >= this.#max) this.#consecutive = 0;
    this.#restarts++;
    this.#recent.push(now);
    this.#prune();
    const crashLoop = this.#recent.length >= this.#loopRestarts;
    const delayMs = crashLoop ? this.#max : Math.min(this.#max, this.#initial * 2 ** this.#consecutive);
    this.#consecutive++;
    return { delayMs, crashLoop, restarts: this.#restarts };
  }

  #prune(): void {
    const from = this.#now() - this.#loopWindow;
    while (this.#recent.length && this.#recent[0] <= from) this.#recent.shift();
  }
}
