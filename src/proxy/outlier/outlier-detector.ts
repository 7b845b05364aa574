/**
 * Passive outlier detection per endpoint, with Envoy's ejection rules and Linkerd's
 * probation on return.
 *
 * The detector only sees request outcomes (`record`) and flips `ejected` on the
 * endpoint objects it was given; the balancer skips ejected endpoints. It never
 * imports the balancer's endpoint type: anything with a `key` and a mutable
 * `ejected` flag will do.
 */
import type { TrafficPolicySpec } from '../../config/resources.ts';

/** What the detector needs from an endpoint; the balancer's EndpointState satisfies it. */
export interface OutlierTarget {
  /** `host:port`, stable across config updates; state is kept by key. */
  readonly key: string;
  /** Written by the detector: true while the endpoint must receive no traffic. */
  ejected: boolean;
}

/**
 * Outcome of one request to an endpoint. `gateway-error` is a 502/503/504 or a connect
 * failure/reset; it also counts towards consecutive 5xx (as Envoy).
 */
export type Outcome = 'success' | '5xx' | 'gateway-error';

export type EjectionReason = 'consecutive-5xx' | 'consecutive-gateway-error' | 'success-rate';

/** Outlier detection config as produced by the schema (defaults applied). */
export type OutlierConfig = NonNullable<TrafficPolicySpec['outlierDetection']>;

/** The defaults of semantics.md, for callers that have no TrafficPolicy. */
export const OUTLIER_DEFAULTS: Readonly<OutlierConfig> = Object.freeze({
  consecutive5xx: 5,
  consecutiveGatewayErrors: 5,
  interval: 10_000,
  baseEjectionTime: 30_000,
  maxEjectionTime: 300_000,
  maxEjectionPercent: 10,
  successRate: Object.freeze({ minHosts: 5, requestVolume: 100, stdevFactor: 1.9 }),
});

export interface OutlierDetectorOptions {
  /** Clock in ms (default `performance.now`); tests inject a fake one. */
  now?: () => number;
  /**
   * Run `sweep()` on a real timer every `interval` (default true). Tests with a fake
   * clock turn this off and call `sweep()` themselves.
   */
  autoSweep?: boolean;
  onEject?(key: string, reason: EjectionReason): void;
  /** Called when an ejected endpoint gets traffic again (start of probation). */
  onReturn?(key: string): void;
}

type Phase = 'active' | 'ejected' | 'probation';

/** Per-endpoint bookkeeping, kept by key so it survives endpoint-list updates. */
interface HostState {
  target: OutlierTarget;
  phase: Phase;
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Requests and successes since the last sweep (success-rate window). */
  total: number;
  successes: number;
  /** Drives the ejection-time multiplier; decays by one per clean interval (as Envoy). */
  timesEjected: number;
  ejectedUntil: number;
}

/** Largest number of hosts that may be ejected at once: max(1, floor(pct·n/100)), 0 for n = 0. */
export function maxEjectable(n: number, maxEjectionPercent: number): number {
  if (n === 0) return 0;
  // As Envoy: at least one host is always ejectable, whatever the percentage.
  return Math.max(1, Math.floor((maxEjectionPercent * n) / 100));
}

/**
 * Tracks outcomes per endpoint and ejects outliers:
 * - `consecutive5xx` 5xx (gateway errors included) or `consecutiveGatewayErrors`
 *   gateway errors in a row eject at once (0 disables that rule);
 * - every `interval`, endpoints with at least `requestVolume` requests in the interval
 *   are compared, if at least `minHosts` qualify: a success rate below
 *   mean − stdevFactor·stdev ejects (enabled with the defaults when `successRate` is unset);
 * - an ejection lasts baseEjectionTime × times ejected, capped at maxEjectionTime;
 * - never more than max(1, floor(maxEjectionPercent·n/100)) endpoints are ejected;
 * - on return the endpoint is on probation (Linkerd): it gets traffic, and its first
 *   result decides — success brings it fully back, failure ejects it again for longer.
 *
 * Returns are processed by `sweep()`, which runs every `interval` (as Envoy: an endpoint
 * comes back at the first sweep after its ejection time ends).
 */
export class OutlierDetector {
  /** Ejections since creation, by reason (for `hexmesh_outlier_ejections_total`). */
  readonly ejectionsTotal: Record<EjectionReason, number> = {
    'consecutive-5xx': 0,
    'consecutive-gateway-error': 0,
    'success-rate': 0,
  };
  private readonly config: OutlierConfig;
  private readonly successRate: NonNullable<OutlierConfig['successRate']>;
  private readonly now: () => number;
  private readonly onEject: OutlierDetectorOptions['onEject'];
  private readonly onReturn: OutlierDetectorOptions['onReturn'];
  private readonly hosts = new Map<string, HostState>();
  private ejectedCount = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(config: OutlierConfig | undefined, opts: OutlierDetectorOptions = {}) {
    const c = config ?? OUTLIER_DEFAULTS;
    if (!(c.interval > 0)) throw new RangeError(`outlierDetection.interval must be > 0, got ${c.interval}`);
    if (c.maxEjectionTime < c.baseEjectionTime)
      throw new RangeError(
        `outlierDetection.maxEjectionTime (${c.maxEjectionTime}) must be >= baseEjectionTime (${c.baseEjectionTime})`,
      );
    this.config = c;
    this.successRate = c.successRate ?? OUTLIER_DEFAULTS.successRate!;
    this.now = opts.now ?? (() => performance.now());
    this.onEject = opts.onEject;
    this.onReturn = opts.onReturn;
    if (opts.autoSweep !== false) {
      this.timer = setInterval(() => this.sweep(), c.interval);
      this.timer.unref();
    }
  }

  /**
   * Replace the endpoint set. State of endpoints whose key is still present is kept
   * (and copied onto the new object's `ejected` flag); state of removed ones is dropped.
   */
  setEndpoints(list: Iterable<OutlierTarget>): void {
    const next = new Map<string, HostState>();
    for (const target of list) {
      const prev = this.hosts.get(target.key);
      if (prev) {
        prev.target = target;
        target.ejected = prev.phase === 'ejected';
        next.set(target.key, prev);
      } else {
        target.ejected = false;
        next.set(target.key, {
          target,
          phase: 'active',
          consecutive5xx: 0,
          consecutiveGateway: 0,
          total: 0,
          successes: 0,
          timesEjected: 0,
          ejectedUntil: 0,
        });
      }
    }
    this.hosts.clear();
    let ejected = 0;
    for (const [k, h] of next) {
      this.hosts.set(k, h);
      if (h.phase === 'ejected') ejected++;
    }
    this.ejectedCount = ejected;
  }

  /** Record the outcome of one request to `ep`. Cheap: one map lookup, a few counters. */
  record(ep: OutlierTarget | string, outcome: Outcome): void {
    if (this.closed) return;
    const h = this.hosts.get(typeof ep === 'string' ? ep : ep.key);
    // Late results from requests started before an ejection say nothing new.
    if (h === undefined || h.phase === 'ejected') return;
    h.total++;
    if (outcome === 'success') {
      h.successes++;
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      if (h.phase === 'probation') h.phase = 'active';
      return;
    }
    h.consecutive5xx++;
    if (outcome === 'gateway-error') h.consecutiveGateway++;
    else h.consecutiveGateway = 0;
    if (h.phase === 'probation') {
      // Linkerd probation: the first result after return decides.
      this.eject(h, outcome === 'gateway-error' ? 'consecutive-gateway-error' : 'consecutive-5xx');
      return;
    }
    const c = this.config;
    if (c.consecutiveGatewayErrors > 0 && h.consecutiveGateway >= c.consecutiveGatewayErrors)
      this.eject(h, 'consecutive-gateway-error');
    else if (c.consecutive5xx > 0 && h.consecutive5xx >= c.consecutive5xx) this.eject(h, 'consecutive-5xx');
  }

  /**
   * Return endpoints whose ejection time is over, then run success-rate ejection over
   * the interval that just ended and start a new one. Runs every `interval` on its own
   * unless `autoSweep` is false.
   */
  sweep(): void {
    if (this.closed) return;
    const now = this.now();
    for (const h of this.hosts.values()) {
      if (h.phase === 'ejected') {
        if (now >= h.ejectedUntil) {
          h.phase = 'probation';
          h.target.ejected = false;
          h.consecutive5xx = 0;
          h.consecutiveGateway = 0;
          this.ejectedCount--;
          this.onReturn?.(h.target.key);
        }
      } else if (h.phase === 'active' && h.timesEjected > 0) {
        // As Envoy: the multiplier decays by one for every interval the host stays in.
        h.timesEjected--;
      }
    }
    this.successRateEjections();
    for (const h of this.hosts.values()) {
      h.total = 0;
      h.successes = 0;
    }
  }

  /** Current phase of an endpoint, for status pages and tests. */
  phase(key: string): Phase | undefined {
    return this.hosts.get(key)?.phase;
  }

  /** Number of endpoints ejected right now. */
  get ejected(): number {
    return this.ejectedCount;
  }

  /** Stop the sweep timer. Ejected endpoints stay as they are. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private successRateEjections(): void {
    const { minHosts, requestVolume, stdevFactor } = this.successRate;
    const rated: { h: HostState; rate: number }[] = [];
    for (const h of this.hosts.values())
      if (h.phase !== 'ejected' && h.total >= requestVolume) rated.push({ h, rate: h.successes / h.total });
    if (rated.length < minHosts) return;
    let sum = 0;
    for (const r of rated) sum += r.rate;
    const mean = sum / rated.length;
    let sq = 0;
    for (const r of rated) sq += (r.rate - mean) ** 2;
    const threshold = mean - stdevFactor * Math.sqrt(sq / rated.length);
    // Worst first, so the ejection cap keeps out the clearest outliers.
    rated.sort((a, b) => a.rate - b.rate);
    for (const r of rated) {
      if (r.rate >= threshold) break;
      this.eject(r.h, 'success-rate');
    }
  }

  private eject(h: HostState, reason: EjectionReason): void {
    if (this.ejectedCount >= maxEjectable(this.hosts.size, this.config.maxEjectionPercent)) return;
    h.timesEjected++;
    h.phase = 'ejected';
    h.ejectedUntil =
      this.now() + Math.min(this.config.baseEjectionTime * h.timesEjected, this.config.maxEjectionTime);
    h.target.ejected = true;
    h.consecutive5xx = 0;
    h.consecutiveGateway = 0;
    this.ejectedCount++;
    this.ejectionsTotal[reason]++;
    this.onEject?.(h.target.key, reason);
  }
}
