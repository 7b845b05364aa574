/**
 * Bearer secrets shown once and stored hashed: `<prefix>.<id>.<secret>`, where `<id>` names
 * the stored record (16 hex digits) and `<secret>` is 32 random bytes (base64url). Only the
 * SHA-256 of the secret is kept, so a store dump cannot be replayed. Join tokens
 * (src/identity/join-tokens.ts) and API tokens (src/control/auth/api-tokens.ts) share it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const ID = /^[0-9a-f]{16}$/;

export interface MintedSecret {
  /** The full token text, to hand to its owner once. */
  readonly token: string;
  readonly id: string;
  /** hex SHA-256 of the secret part: what is stored. */
  readonly hash: string;
}

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A fresh token with `prefix` (e.g. `hxjt`, `hxat`). */
export function mintSecret(prefix: string): MintedSecret {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { token: `${prefix}.${id}.${secret}`, id, hash: sha256Hex(secret) };
}

/** Split a token of `prefix`; undefined when it is not one (never says more). */
export function parseSecret(prefix: string, token: string): { id: string; secret: string } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== prefix || !ID.test(parts[1]) || parts[2] === '') return undefined;
  return { id: parts[1], secret: parts[2] };
}

/** True if `secret` hashes to `hash`, compared in constant time. */
export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(sha256Hex(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** True if `id` has the shape of a token id (lookups of anything else are refused early). */
export const isSecretId = (id: string): boolean => ID.test(id);
