/**
 * The inbound security layers, built once per config: request authentication (JWT)
 * first, then authorization, so `when` conditions and `requestPrincipals` see the
 * validated claims. No policy applies → no layer, and the path goes to the app untouched.
 */
import type { ProxyConfig } from '../../config/proxy-config.ts';
import type { AuthorizationPolicy, RequestAuthentication } from '../../config/resources.ts';
import type { ProxyMetrics } from '../../telemetry/metrics.ts';
import { authnLayer, buildAuthenticator } from '../authn/authn-layer.ts';
import type { JwtAuthenticatorOptions } from '../authn/jwt-authenticator.ts';
import { compose, type Layer, type MeshResponse, type Service } from '../core/dispatch.ts';
import { Authorizer, NO_COUNTERS, type DecisionCounters } from './authorizer.ts';
import { authzLayer } from './authz-layer.ts';
import type { NormalizeOptions } from './normalize-path.ts';
import { appliesTo } from './workload-selector.ts';

export interface SecurityOptions {
  metrics?: ProxyMetrics;
  normalize?: NormalizeOptions;
  jwt?: JwtAuthenticatorOptions;
}

/** `[authn?, authz?]` for this proxy's workload. */
export function buildSecurityLayers(config: ProxyConfig, opts: SecurityOptions = {}): Layer[] {
  const { service, namespace, app } = config.proxy;
  const authz: AuthorizationPolicy[] = [];
  const authn: RequestAuthentication[] = [];
  for (const r of config.resources) {
    if (r.kind === 'AuthorizationPolicy' && appliesTo(r, service, namespace)) authz.push(r);
    if (r.kind === 'RequestAuthentication' && appliesTo(r, service, namespace)) authn.push(r);
  }
  const layers: Layer[] = [];
  const authenticator = buildAuthenticator(authn, opts.jwt);
  if (authenticator) layers.push(authnLayer(authenticator));
  if (authz.length > 0) {
    const m = opts.metrics;
    const counters: DecisionCounters = m ? (p, a, d) => m.authzDecision(p, a, d) : NO_COUNTERS;
    layers.push(
      authzLayer({
        authorizer: new Authorizer(authz, counters, namespace),
        port: app?.port ?? 0,
        service,
        normalize: opts.normalize,
        rejected: counters('none', 'none', 'rejected'),
      }),
    );
  }
  return layers;
}

const PASSED: MeshResponse = Object.freeze({ status: 200, headers: {}, body: null });

/**
 * The same layers as a gate for requests that do not go through the inbound service
 * (WebSocket upgrades): resolves when the request may pass (its path normalised),
 * rejects with the HexmeshError that would have answered it.
 */
export function securityGate(layers: readonly Layer[]): (req: Parameters<Service>[0]) => Promise<void> {
  const svc = compose(layers, () => Promise.resolve(PASSED));
  return async (req) => {
    await svc(req);
  };
}
