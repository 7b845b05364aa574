/**
 * Reconnect delays: exponential from `initial` to `max`, with "equal jitter" (half fixed,
 * half random) so a fleet of proxies that lost the same control plane does not reconnect
 * in lock-step, and no delay is ever near zero.
 */
export interface BackoffOptions {
  /** First delay, ms (default 250). */
  initial?: number;
  /** Cap, ms (default 10 s). */
  max?: number;
}

/** Delay before reconnect attempt `attempt` (0-based); `random` in [0, 1). */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random = Math.random): number {
  const initial = opts.initial ?? 250;
  const max = opts.max ?? 10_000;
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + random() * (base / 2));
}
