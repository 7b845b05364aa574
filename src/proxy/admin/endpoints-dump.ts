/**
 * The admin `/endpoints` answer: every destination the proxy knows with its endpoints'
 * runtime state (what `hexmesh diagnose proxy` shows, like `istioctl proxy-config endpoints`).
 * Built on request from the live destinations; nothing is kept for it.
 */
import { isEligible } from '../balance/endpoint-state.ts';
import type { Destination } from '../outbound/destination.ts';

export interface EndpointDump {
  address: string;
  port: number;
  weight: number;
  meshed: boolean;
  labels: Readonly<Record<string, string>>;
  /** Healthy in the catalog (passing or warning). */
  catalogHealthy: boolean;
  /** Passing the proxy's own active health check (true when none is configured). */
  checkHealthy: boolean;
  ejected: boolean;
  /** May take traffic outside panic mode. */
  eligible: boolean;
  /** Requests in flight. */
  active: number;
  /** Peak-EWMA latency estimate, ms (rounded). */
  costMs: number;
}

export interface DestinationDump {
  service: string;
  namespace: string;
  /** Circuit state, `none` without a circuit breaker. */
  circuit: string;
  endpoints: EndpointDump[];
}

export function dumpEndpoints(destinations: Iterable<Destination>): DestinationDump[] {
  const out: DestinationDump[] = [];
  for (const d of destinations)
    out.push({
      service: d.name,
      namespace: d.namespace,
      circuit: d.breaker?.state ?? 'none',
      endpoints: d.balancer.endpoints.map((e) => ({
        address: e.address,
        port: e.port,
        weight: e.weight,
        meshed: e.meshed,
        labels: e.labels,
        catalogHealthy: e.catalogHealthy,
        checkHealthy: e.checkHealthy,
        ejected: e.ejected,
        eligible: isEligible(e),
        active: e.active,
        costMs: Math.round(e.cost * 100) / 100,
      })),
    });
  return out;
}
