/**
 * The runtime view of one endpoint: its config (address, weight, labels) plus the
 * mutable state the balancers read on every pick (in-flight count, health, ejection,
 * peak-EWMA latency). One object per endpoint key lives as long as the key stays in the
 * balancer's set, so health checkers, outlier detection and in-flight requests can hold
 * a reference to it across config updates.
 */
import type { Endpoint } from '../../config/proxy-config.ts';

/** Peak-EWMA parameters an endpoint reads when it records a sample. Shared by every endpoint of one balancer. */
export interface EwmaParams {
  /** Monotonic clock in milliseconds (performance.now in production, a fake clock in tests). */
  readonly now: () => number;
  /** Decay time constant τ in ms (Linkerd: 10 s). */
  readonly decayMs: number;
  /** Cost assumed for an endpoint with no RTT sample yet (Linkerd: 30 ms). */
  readonly defaultRttMs: number;
}

export const DEFAULT_EWMA: EwmaParams = Object.freeze({
  now: () => performance.now(),
  decayMs: 10_000,
  defaultRttMs: 30,
});

/** What an {@link EndpointState} is built from: a config endpoint; everything but address and port defaults. */
export type EndpointInit = Pick<Endpoint, 'address' | 'port'> & Partial<Endpoint>;

/** `host:port`, with IPv6 literals bracketed (`[::1]:8080`) so the key is also a valid authority. */
export function endpointKey(address: string, port: number): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]:${port}` : `${address}:${port}`;
}

export class EndpointState {
  /** `host:port`; identity of the endpoint across config updates. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** Config fields below are refreshed in place when a config update keeps this key. */
  weight: number;
  labels: Readonly<Record<string, string>>;
  meshed: boolean;
  /** Catalog health is passing or warning (Consul: warning still takes traffic). */
  catalogHealthy: boolean;
  /** Result of the active health check; true until a checker says otherwise. */
  checkHealthy = true;
  /** Set and cleared by outlier detection. */
  ejected = false;
  /** Requests in flight (started, not ended). Never negative. */
  active = 0;
  /** Peak-EWMA latency estimate in ms, as of {@link updatedAt}. */
  cost: number;
  /** Clock time of the last cost update (the last sample, or creation). */
  updatedAt: number;
  /** False until the first RTT sample; an unmeasured endpoint costs `defaultRttMs`. */
  measured = false;
  /** EWMA parameters; a balancer installs its own when it adopts the endpoint. */
  ewma: EwmaParams;

  constructor(init: EndpointInit, ewma: EwmaParams = DEFAULT_EWMA) {
    this.address = init.address;
    this.port = init.port;
    this.key = endpointKey(init.address, init.port);
    this.weight = init.weight ?? 1;
    this.labels = init.labels ?? {};
    this.meshed = init.meshed ?? true;
    this.catalogHealthy = (init.health ?? 'passing') !== 'critical';
    this.ewma = ewma;
    this.cost = ewma.defaultRttMs;
    this.updatedAt = ewma.now();
  }

  /** Healthy in the catalog and in the active health check. Ejection is separate ({@link isEligible}). */
  get healthy(): boolean {
    return this.catalogHealthy && this.checkHealthy;
  }

  /** Copy config fields from a newer object for the same key; runtime state (active, health check, cost) stays. */
  refreshFrom(next: EndpointState): void {
    this.weight = next.weight;
    this.labels = next.labels;
    this.meshed = next.meshed;
    this.catalogHealthy = next.catalogHealthy;
  }

  /**
   * Start using `params`. An endpoint that was never measured restarts its default cost on
   * the new clock, so a fake clock in tests and the real one never mix.
   */
  adopt(params: EwmaParams): void {
    if (this.ewma === params) return;
    this.ewma = params;
    if (!this.measured) {
      this.cost = params.defaultRttMs;
      this.updatedAt = params.now();
    }
  }
}

/** True if the endpoint may take traffic outside panic mode. */
export function isEligible(ep: EndpointState): boolean {
  return ep.catalogHealthy && ep.checkHealthy && !ep.ejected;
}

/** Mark a request as started on `ep` (call right after `pick`). */
export function start(ep: EndpointState): void {
  ep.active++;
}

/**
 * Mark a request as ended on `ep`. `rttMs` (time to response headers, as Linkerd) feeds the
 * peak-EWMA estimate; pass undefined when there is no meaningful sample (connect failure, cancel).
 */
export function end(ep: EndpointState, rttMs?: number): void {
  if (ep.active > 0) ep.active--;
  if (rttMs !== undefined && rttMs >= 0 && rttMs < Infinity) recordRtt(ep, rttMs);
}

/**
 * One peak-EWMA sample (Linkerd/Finagle): with `w = exp(-Δt/τ)`, a sample above the current
 * estimate replaces it at once (the "peak": react to slowness immediately), a lower one
 * pulls the estimate down gradually.
 */
export function recordRtt(ep: EndpointState, rttMs: number): void {
  const now = ep.ewma.now();
  const current = decayedCost(ep, now);
  if (rttMs > current) {
    ep.cost = rttMs;
  } else {
    const w = Math.exp(-Math.max(0, now - ep.updatedAt) / ep.ewma.decayMs);
    ep.cost = ep.cost * w + rttMs * (1 - w);
  }
  ep.updatedAt = now;
  ep.measured = true;
}

/**
 * The estimate as seen at `now`: it decays toward zero while no sample arrives (as tower's
 * PeakEwma decays on every load read), so an endpoint that was slow once is probed again
 * instead of being starved forever by P2C.
 */
export function decayedCost(ep: EndpointState, now: number): number {
  const dt = now - ep.updatedAt;
  return dt > 0 ? ep.cost * Math.exp(-dt / ep.ewma.decayMs) : ep.cost;
}
