/**
 * What authorization knows about the calling workload: its SPIFFE ID (from the mTLS
 * peer certificate; empty in plaintext) and the namespace in it.
 */

/** `spiffe://<td>/ns/<namespace>/sa/<sa>` → `<namespace>`; '' when not of that shape. */
export function namespaceOf(spiffeId: string): string {
  const i = spiffeId.indexOf('/ns/');
  if (!spiffeId.startsWith('spiffe://') || i < 0) return '';
  const start = i + 4;
  const end = spiffeId.indexOf('/', start);
  return end < 0 ? spiffeId.slice(start) : spiffeId.slice(start, end);
}

/** The principal literal that matches a peer with no identity (plaintext). */
export const UNAUTHENTICATED = 'unauthenticated';

/**
 * Principal patterns are full SPIFFE IDs; like Istio, `td/ns/x/sa/y` (no scheme) is
 * accepted and means `spiffe://td/ns/x/sa/y`.
 */
export function principalPattern(p: string): string {
  if (p === '*' || p === UNAUTHENTICATED || p.startsWith('spiffe://') || p.startsWith('*')) return p;
  return `spiffe://${p}`;
}
