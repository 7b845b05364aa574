/**
 * The inbound side: traffic from other sidecars to the local app.
 *
 *   [caller (x-hexmesh-client names the source service)] →
 *   [authn (JWT) · authz (path normalisation, AuthorizationPolicy)] →
 *   [rate limit (policies targeting this service)] → [timeout (proxy.inboundTimeout)] →
 *   local app connection
 *
 * Faults are injected on the caller's side only (outbound), so a policy seen by both
 * sidecars does not inject twice.
 *
 * Security runs first, so denied requests never spend rate-limit tokens.
 */
import type { ProxyConfig } from '../../config/proxy-config.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { compose, header, type Layer, type Service } from '../core/dispatch.ts';
import { rateLimitLayer } from '../ratelimit/rate-limit-layer.ts';
import { resolveResilience } from '../retry/resilience-options.ts';
import { timeoutLayer } from '../timeout/timeout-layer.ts';
import { CLIENT_HEADER } from '../outbound/destination.ts';
import type { TransportPool } from '../transport/transport-pool.ts';
import { buildSecurityLayers, type SecurityOptions } from '../authz/security-stack.ts';

export function buildInbound(
  config: ProxyConfig,
  transports: TransportPool,
  /** Metrics and options for the security layers, or `layers` already built by the caller. */
  security: SecurityOptions & { layers?: Layer[] } = {},
): Service {
  const app = config.proxy.app;
  const self = config.proxy.service;
  if (!app)
    return () =>
      Promise.reject(
        new HexmeshError(
          'HEXMESH_ERR_UNKNOWN_SERVICE',
          `${self} has no local app to receive inbound traffic (proxy.app is not set)`,
        ),
      );
  const appKey = `${app.host}:${app.port}`;
  const appH2 = app.protocol === 'http2' || app.protocol === 'grpc';
  const terminal: Service = (req) => {
    // Transparent capture: the app where the peer sent the connection (request-context.ts).
    const { originalHost: host, originalPort: port } = req.ctx.notes;
    if (typeof host === 'string' && typeof port === 'number') {
      const key = `${host}:${port}`;
      req.ctx.endpoint = key;
      return transports.request(key, host, port, appH2 || req.grpc, req);
    }
    req.ctx.endpoint = appKey;
    return transports.request(appKey, app.host, app.port, appH2 || req.grpc, req);
  };
  const policy = config.resources.find(
    (r) =>
      r.kind === 'TrafficPolicy' &&
      r.spec.targetRef.kind === 'Service' &&
      r.spec.targetRef.name === self &&
      r.metadata.namespace === config.proxy.namespace,
  );
  const layers: Layer[] = [callerLayer, ...(security.layers ?? buildSecurityLayers(config, security))];
  if (policy?.kind === 'TrafficPolicy') {
    // Local rate limits protect the app from all its callers together (Envoy's inbound local_ratelimit).
    const res = resolveResilience(undefined, { rateLimit: policy.spec.rateLimit });
    if (res.rateLimit) layers.push(rateLimitLayer(res.rateLimit));
  }
  // Innermost, around the app alone: an app that never sends its headers is answered 504
  // instead of holding the request (and its caller's connection) forever, even when the
  // caller's route timeout is 0. Denied or rate-limited requests never start the clock.
  layers.push(timeoutLayer({ request: config.proxy.inboundTimeout }));
  return compose(layers, terminal);
}

/**
 * Outermost: the calling service named by its sidecar (x-hexmesh-client) becomes the
 * request's source before anything can refuse it, so a denied or rate-limited request is
 * counted, tapped and logged from its caller, not from "unknown". The app never sees it.
 */
const callerLayer: Layer = (next) => (req) => {
  const client = header(req.headers, CLIENT_HEADER);
  if (client !== undefined) {
    req.ctx.srcService = client;
    delete req.headers[CLIENT_HEADER];
  }
  return next(req);
};
