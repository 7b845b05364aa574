/**
 * The authorization layer of the inbound sidecar (Envoy's RBAC filter, Istio semantics):
 * normalise the path (400 on what cannot be normalised safely), decide over the
 * policies that apply, count the decision, and either pass the request on with the
 * normalised path or fail it with `denied` (403; gRPC PERMISSION_DENIED) naming the
 * policy. The app receives the normalised path, so it serves exactly what was
 * authorized.
 *
 * Method override headers (`X-HTTP-Method-Override`, `X-HTTP-Method`,
 * `X-Method-Override`): frameworks that honour them run the handler of the named
 * method, those that do not run the real one. The request is therefore decided for the
 * real method and again for every overriding one, and denied if any decision denies.
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { requestAuthOf } from '../authn/request-auth.ts';
import type { HeaderMap, Layer, MeshRequest } from '../core/dispatch.ts';
import type { AuthzAttributes } from './attributes.ts';
import type { Authorizer, DecisionCounter, Verdict } from './authorizer.ts';
import { normalizePath, type NormalizeOptions } from './normalize-path.ts';
import { namespaceOf } from './peer.ts';

export const METHOD_OVERRIDE_HEADERS = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
] as const;

export interface AuthzLayerOptions {
  authorizer: Authorizer;
  /** The workload's port (the app port), matched by `ports` and `destination.port`. */
  port: number;
  /** This workload's service, for messages. */
  service: string;
  normalize?: NormalizeOptions;
  /** Counts requests refused by path normalisation (bound at config time). */
  rejected?: DecisionCounter;
}

/** Build the layer; everything is compiled here, nothing per request but the attributes object. */
export function authzLayer(opts: AuthzLayerOptions): Layer {
  const { authorizer, port, service } = opts;
  const normalize = opts.normalize ?? {};
  const rejected = opts.rejected ?? { inc() {} };
  const allowNames = authorizer.allowPolicies.join(', ');
  return (next) => (req) => {
    const n = normalizePath(req.path, normalize);
    if (!n.ok) {
      rejected.inc();
      return Promise.reject(
        new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `bad request path: ${n.reason}`, {
          context: { service },
        }),
      );
    }
    const a = attributesOf(req, n.path, port);
    let v = authorizer.decide(a);
    if (v.allowed) v = decideOverrides(authorizer, a, req.headers, v);
    v.counter.inc();
    if (!v.allowed) return Promise.reject(denied(v, service, allowNames));
    if (v.policy !== null) req.ctx.notes.authzPolicy = v.policy;
    // Forward what was authorized.
    const normalized = n.query === '' ? n.path : n.path + n.query;
    if (normalized !== req.path) req.path = normalized;
    return next(req);
  };
}

function attributesOf(req: MeshRequest, path: string, port: number): AuthzAttributes {
  const peer = req.ctx.peerIdentity;
  return {
    method: req.method,
    path,
    host: req.authority.toLowerCase(),
    port,
    headers: req.headers,
    peer,
    peerNamespace: peer === '' ? '' : namespaceOf(peer),
    sourceIp: req.ctx.srcAddress,
    auth: requestAuthOf(req.ctx),
  };
}

/** Re-decide for each method an override header names; the first denial wins. */
function decideOverrides(
  authorizer: Authorizer,
  a: AuthzAttributes,
  headers: HeaderMap,
  v: Verdict,
): Verdict {
  const real = a.method;
  for (const h of METHOD_OVERRIDE_HEADERS) {
    const raw = headers[h];
    if (raw === undefined) continue;
    for (const m of Array.isArray(raw) ? raw : [raw]) {
      a.method = m.trim().toUpperCase();
      if (a.method === real) continue;
      const o = authorizer.decide(a, false);
      if (!o.allowed) {
        a.method = real;
        return o;
      }
    }
  }
  a.method = real;
  return v;
}

function denied(v: Verdict, service: string, allowNames: string): HexmeshError {
  const message =
    v.policy !== null
      ? `denied by policy ${v.policy}`
      : `denied: no ALLOW policy of ${service} matches (${allowNames})`;
  return new HexmeshError('HEXMESH_ERR_DENIED', message, {
    context: { policy: v.policy ?? 'none', service },
  });
}
