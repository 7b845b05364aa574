/**
 * How a transport secures the connection it opens. Plaintext today; mutual TLS between
 * sidecars (the security issue) is one more implementation of this interface, so adding
 * it changes no transport and no layer.
 */
import type { ConnectionOptions } from 'node:tls';

export interface HopSecurity {
  /** `http` for plaintext, `https` once TLS is on. */
  readonly scheme: 'http' | 'https';
  /** Extra options for undici's connector / http2.connect (TLS material, servername). */
  connectOptions(host: string): Partial<ConnectionOptions>;
}

export const PLAINTEXT: HopSecurity = Object.freeze({
  scheme: 'http' as const,
  connectOptions: () => ({}),
});
