/**
 * Authorization for connections that are not parsed as HTTP: opaque TCP to the app (a
 * tunnel from another sidecar, a declared opaque port, an app declared `tcp`/`opaque`).
 * Envoy's network RBAC filter: decided once, when the connection is accepted, on what a
 * connection has (peer SPIFFE ID and namespace, source address, the app port); a denied
 * connection is closed before a byte reaches the app. Policies are read for TCP as Istio
 * does (policy.ts, `matchesConnection`).
 */
import type { ProxyConfig } from '../../config/proxy-config.ts';
import type { AuthorizationPolicy } from '../../config/resources.ts';
import type { ProxyMetrics } from '../../telemetry/metrics.ts';
import { PEER_IDENTITY } from '../listen/request-context.ts';
import type { AuthzAttributes } from './attributes.ts';
import { Authorizer, NO_COUNTERS, type DecisionCounters } from './authorizer.ts';
import { namespaceOf } from './peer.ts';
import { appliesTo } from './workload-selector.ts';

/** The decision for one accepted connection: true lets it through (the decision is counted). */
export type ConnectionGate = (socket: { remoteAddress?: string }) => boolean;

const OPEN: ConnectionGate = () => true;

/** Build the gate for this proxy's workload; no policy applies → every connection passes. */
export function buildConnectionGate(config: ProxyConfig, metrics?: ProxyMetrics): ConnectionGate {
  const { service, namespace, app } = config.proxy;
  const policies = config.resources.filter(
    (r): r is AuthorizationPolicy => r.kind === 'AuthorizationPolicy' && appliesTo(r, service, namespace),
  );
  if (policies.length === 0) return OPEN;
  const counters: DecisionCounters = metrics ? (p, a, d) => metrics.authzDecision(p, a, d) : NO_COUNTERS;
  const authorizer = new Authorizer(policies, counters, namespace);
  const port = app?.port ?? 0;
  return (socket) => {
    const peer = (socket as { [PEER_IDENTITY]?: string })[PEER_IDENTITY] ?? '';
    const a: AuthzAttributes = {
      method: '',
      path: '',
      host: '',
      port,
      headers: {},
      peer,
      peerNamespace: peer === '' ? '' : namespaceOf(peer),
      sourceIp: socket.remoteAddress ?? '',
      auth: undefined,
    };
    const v = authorizer.decideConnection(a);
    v.counter.inc();
    return v.allowed;
  };
}
