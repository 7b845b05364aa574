/**
 * How a transport secures the connection it opens. Plaintext, or mutual TLS between
 * sidecars (mtls.ts): one more implementation of this interface, so adding it changed no
 * layer, only what the transports pass to their connectors.
 */
import type { ConnectionOptions } from 'node:tls';

/** What the outbound side knows about an endpoint when it picks how to secure the hop. */
export interface PeerInfo {
  /** false: a plain app with no sidecar (always plaintext). */
  readonly meshed: boolean;
  /** The SPIFFE ID discovery says the endpoint has; undefined when unknown. */
  readonly identity: string | undefined;
  /** The destination service and its namespace (fallback identity when `identity` is unknown). */
  readonly service: string;
  readonly namespace: string;
}

export interface HopSecurity {
  /** `http` for plaintext, `https` once TLS is on. */
  readonly scheme: 'http' | 'https';
  /** Extra options for undici's connector / http2.connect / tls.connect (TLS material, checks, ALPN). */
  connectOptions(host: string): Partial<ConnectionOptions>;
  /**
   * Per-endpoint security (mTLS: TLS with the identity to verify for meshed endpoints,
   * plaintext for the others). Absent: this object is used for every endpoint. Must be
   * cheap (called per request) and return the same object for the same answer, so pools
   * keyed on it are reused.
   */
  forPeer?(peer: PeerInfo): HopSecurity;
  /** The peer identity a TLS connection made with this object is verified to have. */
  readonly peerIdentity?: string;
}

export const PLAINTEXT: HopSecurity = Object.freeze({
  scheme: 'http' as const,
  connectOptions: () => ({}),
});
