/**
 * The request attributes policies match on, gathered once per request by the layer.
 * Kept apart from MeshRequest so matching is a pure function that unit tests can
 * drive directly (principals before mTLS lands, claims without a real token).
 */
import type { RequestAuth } from '../authn/request-auth.ts';
import type { HeaderMap } from '../core/dispatch.ts';
import type { NormalizedHost } from '../route/authority.ts';

export type { RequestAuth };

export interface AuthzAttributes {
  /** Effective method (upper-case). */
  method: string;
  /** Normalised path, no query. */
  path: string;
  /** Authority, lower-case (`host[:port]`), as the request has it. */
  host: string;
  /**
   * `host` normalised as routing reads it (route/authority.ts), filled in on first use by
   * a policy with `hosts` (once per request, and only when some policy asks).
   */
  hostName?: NormalizedHost;
  /** Port of the workload (the app port), Istio's destination port. */
  port: number;
  headers: HeaderMap;
  /** Peer SPIFFE ID, '' when unauthenticated (plaintext). */
  peer: string;
  /** Namespace from the peer's SPIFFE ID, '' when unknown. */
  peerNamespace: string;
  /** Address of the downstream peer (the calling sidecar). */
  sourceIp: string;
  auth: RequestAuth | undefined;
}
