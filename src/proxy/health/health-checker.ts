/**
 * Active health checking of a set of endpoints: each target is checked every
 * `interval`, and `healthyThreshold` / `unhealthyThreshold` consecutive results flip
 * its `checkHealthy` flag, which the balancer reads.
 *
 * Like the outlier detector, this module never imports the balancer's endpoint type:
 * anything with a key, an address, a port and a mutable `checkHealthy` flag will do.
 */
import { type CheckResult, type CheckStatus, type HealthCheckConfig, runCheck } from './run-check.ts';

/** What the checker needs from an endpoint; the balancer's EndpointState satisfies it. */
export interface HealthTarget {
  /** `host:port`, stable across updates; state is kept by key. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /**
   * Written by the checker. Named apart from `healthy` because an endpoint's overall
   * health also includes what the catalog says (EndpointState.healthy is a getter over both).
   */
  checkHealthy: boolean;
}

export interface HealthCheckerOptions {
  /**
   * Health of a target before its first check result. Default false (Consul: a new
   * instance is critical until its first passing check), so an endpoint that never
   * answers never gets traffic. Set true to trust new endpoints until proven bad.
   */
  initialHealthy?: boolean;
  /** Called when a target's `healthy` flips; `detail` is the check result that flipped it. */
  onChange?(key: string, healthy: boolean, detail: string): void;
  /** Called after every check (for status reporting, e.g. the catalog's warning state). */
  onResult?(key: string, result: CheckResult): void;
  /** Source of randomness for the first-check jitter (default Math.random). */
  random?: () => number;
}

/** Last known state of a target, for status pages and catalog reports. */
export interface TargetHealth {
  readonly healthy: boolean;
  /** Status of the last check; undefined before the first one. */
  readonly status: CheckStatus | undefined;
  readonly detail: string;
}

interface TargetState {
  target: HealthTarget;
  healthy: boolean;
  /** False until the first result: then a single pass is enough (as Envoy and Consul). */
  checked: boolean;
  passes: number;
  failures: number;
  last: CheckResult | undefined;
  timer: NodeJS.Timeout | undefined;
  inFlight: AbortController | undefined;
}

/**
 * Runs the configured check against every target. Checks of one target never overlap:
 * the next starts `interval` after the previous one started, or as soon as it ended
 * if it took longer. The first check of each target is delayed by a random fraction
 * of `interval`, so a proxy that starts with many endpoints does not check them all
 * at once (and many proxies do not all hit one endpoint at once).
 */
export class HealthChecker {
  private readonly config: HealthCheckConfig;
  private readonly initialHealthy: boolean;
  private readonly onChange: HealthCheckerOptions['onChange'];
  private readonly onResult: HealthCheckerOptions['onResult'];
  private readonly random: () => number;
  private readonly states = new Map<string, TargetState>();
  private closed = false;

  constructor(config: HealthCheckConfig, targets: Iterable<HealthTarget>, opts: HealthCheckerOptions = {}) {
    if (!(config.interval > 0))
      throw new RangeError(`healthCheck.interval must be > 0, got ${config.interval}`);
    if (!(config.timeout > 0)) throw new RangeError(`healthCheck.timeout must be > 0, got ${config.timeout}`);
    this.config = config;
    this.initialHealthy = opts.initialHealthy ?? false;
    this.onChange = opts.onChange;
    this.onResult = opts.onResult;
    this.random = opts.random ?? Math.random;
    this.setTargets(targets);
  }

  /**
   * Replace the target set. Targets whose key is still present keep their state (copied
   * onto the new object's `checkHealthy`); removed ones stop being checked; new ones start
   * at `initialHealthy` with a jittered first check.
   */
  setTargets(list: Iterable<HealthTarget>): void {
    if (this.closed) return;
    const seen = new Set<string>();
    for (const target of list) {
      seen.add(target.key);
      const prev = this.states.get(target.key);
      if (prev) {
        prev.target = target;
        target.checkHealthy = prev.healthy;
        continue;
      }
      target.checkHealthy = this.initialHealthy;
      const state: TargetState = {
        target,
        healthy: this.initialHealthy,
        checked: false,
        passes: 0,
        failures: 0,
        last: undefined,
        timer: undefined,
        inFlight: undefined,
      };
      this.states.set(target.key, state);
      this.schedule(state, this.random() * this.config.interval);
    }
    for (const [key, state] of this.states)
      if (!seen.has(key)) {
        this.stop(state);
        this.states.delete(key);
      }
  }

  /** Last known health of `key`, or undefined if it is not a target. */
  health(key: string): TargetHealth | undefined {
    const s = this.states.get(key);
    if (!s) return undefined;
    return { healthy: s.healthy, status: s.last?.status, detail: s.last?.detail ?? 'not checked yet' };
  }

  /** Stop all checks, cancelling those in flight. Targets keep their last `checkHealthy`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.states.values()) this.stop(s);
    this.states.clear();
  }

  private schedule(state: TargetState, delay: number): void {
    state.timer = setTimeout(() => this.run(state), delay);
    // Checks must not keep a process alive that is otherwise done.
    state.timer.unref();
  }

  private run(state: TargetState): void {
    state.timer = undefined;
    const started = performance.now();
    const ac = new AbortController();
    state.inFlight = ac;
    const { address, port } = state.target;
    void runCheck(this.config, address, port, ac.signal).then((result) => {
      state.inFlight = undefined;
      // Removed or closed while the check ran: its result belongs to nobody.
      if (this.closed || this.states.get(state.target.key) !== state) return;
      this.apply(state, result);
      this.schedule(state, Math.max(0, this.config.interval - (performance.now() - started)));
    });
  }

  private apply(state: TargetState, result: CheckResult): void {
    const first = !state.checked;
    state.checked = true;
    state.last = result;
    // Consul: warning (HTTP 429) still takes traffic; it is reported, not acted on.
    if (result.status !== 'critical') {
      state.passes++;
      state.failures = 0;
      if (!state.healthy && (first || state.passes >= this.config.healthyThreshold)) this.flip(state, true);
    } else {
      state.failures++;
      state.passes = 0;
      if (state.healthy && state.failures >= this.config.unhealthyThreshold) this.flip(state, false);
    }
    this.onResult?.(state.target.key, result);
  }

  private flip(state: TargetState, healthy: boolean): void {
    state.healthy = healthy;
    state.target.checkHealthy = healthy;
    this.onChange?.(state.target.key, healthy, state.last?.detail ?? '');
  }

  private stop(state: TargetState): void {
    if (state.timer) clearTimeout(state.timer);
    state.timer = undefined;
    state.inFlight?.abort();
    state.inFlight = undefined;
  }
}
