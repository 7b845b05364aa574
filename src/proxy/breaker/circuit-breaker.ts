/**
 * The circuit breaker of the Hystrix flow (closed → open → half-open), with
 * resilience4j's slow-call branch. See docs/circuit-breaking.md.
 *
 * - closed: every call is admitted and its outcome counted in a rolling window. Once the
 *   window holds at least `requestVolumeThreshold` calls, the circuit opens when
 *   errors (failures + timeouts + rejections, as Hystrix) reach `errorThresholdPercent`
 *   of them, or, with `slowCallDuration` set, when slow calls reach
 *   `slowCallThresholdPercent` of the executed (not rejected) calls.
 * - open: nothing is admitted for `sleepWindow`.
 * - half-open: exactly one trial call is admitted; its success (and not slow) closes the
 *   circuit with a fresh window, anything else opens it for another sleep window.
 *
 * The move from open to half-open happens on the first `tryAcquire` after the sleep
 * window (as Hystrix and resilience4j's default): no timers, so an idle breaker costs nothing.
 */
import type { TrafficPolicySpec } from '../../config/resources.ts';
import { RollingWindow, type WindowEvent } from './rolling-window.ts';

export type CircuitBreakerConfig = NonNullable<TrafficPolicySpec['circuitBreaker']>;

/** Hystrix's defaults (semantics.md); slow-call detection is off unless `slowCallDuration` is set. */
export const CIRCUIT_BREAKER_DEFAULTS: Readonly<CircuitBreakerConfig> = Object.freeze({
  enabled: true,
  window: 10_000,
  buckets: 10,
  requestVolumeThreshold: 20,
  errorThresholdPercent: 50,
  sleepWindow: 5000,
  slowCallDuration: undefined,
  slowCallThresholdPercent: 100,
});

export type CircuitState = 'closed' | 'open' | 'half-open';

/** How an admitted call ended. `rejected`: the bulkhead refused it after the circuit let it in. */
export type CallOutcome = 'success' | 'failure' | 'timeout' | 'rejected';

export type StateListener = (state: CircuitState, previous: CircuitState) => void;

/** What a breaker reports for metrics and debugging. */
export interface CircuitSnapshot {
  state: CircuitState;
  total: number;
  success: number;
  failure: number;
  timeout: number;
  rejection: number;
  slow: number;
}

const WINDOW_EVENT: Readonly<Record<CallOutcome, WindowEvent>> = {
  success: 'success',
  failure: 'failure',
  timeout: 'timeout',
  rejected: 'rejection',
};

/**
 * Leave to make one call. Settle it exactly once with {@link Permit.record} or, when the
 * call says nothing about the destination (the client went away, a 4xx-class error),
 * {@link Permit.cancel}. Further calls are ignored, so a layer may settle defensively.
 */
export class Permit {
  private settled = false;

  /** @internal Created by {@link CircuitBreaker.tryAcquire}. */
  constructor(
    private readonly breaker: CircuitBreaker,
    /** The breaker's epoch when the permit was granted; outcomes of older epochs are dropped. */
    readonly epoch: number,
    /** True for the single half-open probe. */
    readonly trial: boolean,
  ) {}

  /** Report how the call ended and how long it took (ms, for the slow-call check). */
  record(outcome: CallOutcome, durationMs: number): void {
    if (this.settled) return;
    this.settled = true;
    this.breaker.settle(this, outcome, durationMs);
  }

  /** The call tells nothing about the destination: not counted; a trial frees its slot. */
  cancel(): void {
    if (this.settled) return;
    this.settled = true;
    this.breaker.release(this);
  }
}

export interface CircuitBreakerOptions {
  /** Clock in ms (default `performance.now`); inject a fake one in tests. */
  now?: () => number;
}

export class CircuitBreaker {
  readonly config: Readonly<CircuitBreakerConfig>;
  private readonly now: () => number;
  private readonly window: RollingWindow;
  private readonly listeners = new Set<StateListener>();
  private current: CircuitState = 'closed';
  /** Bumped on every state change, so calls admitted under an old state cannot move the new one. */
  private epoch = 0;
  private openedAt = 0;
  private trialInFlight = false;

  constructor(config: Partial<CircuitBreakerConfig> = {}, opts: CircuitBreakerOptions = {}) {
    const d = CIRCUIT_BREAKER_DEFAULTS;
    this.config = Object.freeze({
      enabled: config.enabled ?? d.enabled,
      window: config.window ?? d.window,
      buckets: config.buckets ?? d.buckets,
      requestVolumeThreshold: config.requestVolumeThreshold ?? d.requestVolumeThreshold,
      errorThresholdPercent: config.errorThresholdPercent ?? d.errorThresholdPercent,
      sleepWindow: config.sleepWindow ?? d.sleepWindow,
      slowCallDuration: config.slowCallDuration,
      slowCallThresholdPercent: config.slowCallThresholdPercent ?? d.slowCallThresholdPercent,
    });
    this.now = opts.now ?? (() => performance.now());
    this.window = new RollingWindow({
      window: this.config.window,
      buckets: this.config.buckets,
      now: this.now,
    });
  }

  get state(): CircuitState {
    return this.current;
  }

  /**
   * Ask to make a call. Returns a {@link Permit} to settle when the call ends, or
   * `undefined` when the circuit is open (or half-open with its trial in flight).
   */
  tryAcquire(): Permit | undefined {
    switch (this.current) {
      case 'closed':
        return new Permit(this, this.epoch, false);
      case 'open':
        if (this.now() - this.openedAt < this.config.sleepWindow) return undefined;
        this.transition('half-open');
        this.trialInFlight = true;
        return new Permit(this, this.epoch, true);
      case 'half-open':
        if (this.trialInFlight) return undefined;
        this.trialInFlight = true;
        return new Permit(this, this.epoch, true);
    }
  }

  /** Watch state changes (for `hexmesh_circuit_state`). Returns a function that stops watching. */
  onStateChange(listener: StateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Current state and window totals. */
  snapshot(): CircuitSnapshot {
    const c = this.window.counts();
    return { state: this.current, total: c.success + c.failure + c.timeout + c.rejection, ...c };
  }

  /** Drop listeners. The breaker holds no timers or sockets. */
  close(): void {
    this.listeners.clear();
  }

  /** @internal Called once per permit by {@link Permit.record}. */
  settle(permit: Permit, outcome: CallOutcome, durationMs: number): void {
    // A call admitted before the last state change says nothing about the circuit now:
    // in particular it must not close a circuit whose trial is still out.
    if (permit.epoch !== this.epoch) return;
    const limit = this.config.slowCallDuration;
    const slow = limit !== undefined && outcome !== 'rejected' && durationMs >= limit;
    if (permit.trial) {
      this.trialInFlight = false;
      // resilience4j: a slow probe means latency is not OK yet.
      this.transition(outcome === 'success' && !slow ? 'closed' : 'open');
      return;
    }
    this.window.record(WINDOW_EVENT[outcome], slow);
    if (this.shouldTrip()) this.transition('open');
  }

  /** @internal Called once per permit by {@link Permit.cancel}. */
  release(permit: Permit): void {
    if (permit.trial && permit.epoch === this.epoch) this.trialInFlight = false;
  }

  private shouldTrip(): boolean {
    const w = this.window;
    const success = w.get('success');
    const failure = w.get('failure');
    const timeout = w.get('timeout');
    const rejection = w.get('rejection');
    const total = success + failure + timeout + rejection;
    if (total < this.config.requestVolumeThreshold) return false;
    const errors = failure + timeout + rejection;
    // Integer arithmetic on counts: no rounding at the threshold.
    if (errors > 0 && errors * 100 >= this.config.errorThresholdPercent * total) return true;
    if (this.config.slowCallDuration === undefined) return false;
    const slow = w.get('slow');
    const executed = success + failure + timeout;
    return slow > 0 && slow * 100 >= this.config.slowCallThresholdPercent * executed;
  }

  private transition(to: CircuitState): void {
    const from = this.current;
    this.current = to;
    this.epoch++;
    this.trialInFlight = false;
    if (to === 'open') this.openedAt = this.now();
    // Hystrix resets its metrics when the circuit closes, so old errors cannot re-trip it.
    else if (to === 'closed') this.window.reset();
    for (const l of this.listeners) l(to, from);
  }
}

/** Build the breaker a TrafficPolicy asks for; `undefined` when it has none or disables it. */
export function circuitBreakerFromSpec(
  spec: TrafficPolicySpec['circuitBreaker'],
  opts: CircuitBreakerOptions = {},
): CircuitBreaker | undefined {
  if (!spec || !spec.enabled) return undefined;
  return new CircuitBreaker(spec, opts);
}
