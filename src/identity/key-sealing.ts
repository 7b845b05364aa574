/**
 * The intermediate's private key lives in the store so that every control-plane replica
 * can sign. With a secret (`--ca-key-secret-file` or HEXMESH_CA_KEY_SECRET) it is sealed
 * with AES-256-GCM under a scrypt-derived key, so a store dump or an etcd backup alone does
 * not give away the CA; without one it is stored as PEM (docs/identity.md says so).
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { HexmeshError } from '../errors/hexmesh-error.ts';

export interface SealedKey {
  /** `pem`: stored as is; `aes-256-gcm`: sealed with the operator's secret. */
  readonly alg: 'pem' | 'aes-256-gcm';
  readonly data: string;
  readonly salt?: string;
  readonly iv?: string;
  readonly tag?: string;
}

export function sealKey(pem: string, secret: string | undefined): SealedKey {
  if (!secret) return { alg: 'pem', data: pem };
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', scryptSync(secret, salt, 32), iv);
  const data = Buffer.concat([c.update(pem, 'utf8'), c.final()]);
  return {
    alg: 'aes-256-gcm',
    data: data.toString('base64'),
    salt: salt.toString('base64'),
    iv: iv.toString('base64'),
    tag: c.getAuthTag().toString('base64'),
  };
}

export function unsealKey(k: SealedKey, secret: string | undefined): string {
  if (k.alg === 'pem') return k.data;
  if (!secret)
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      'the CA key in the store is sealed: start the control plane with the same --ca-key-secret-file (or HEXMESH_CA_KEY_SECRET)',
    );
  try {
    const d = createDecipheriv(
      'aes-256-gcm',
      scryptSync(secret, Buffer.from(k.salt!, 'base64'), 32),
      Buffer.from(k.iv!, 'base64'),
    );
    d.setAuthTag(Buffer.from(k.tag!, 'base64'));
    return Buffer.concat([d.update(Buffer.from(k.data, 'base64')), d.final()]).toString('utf8');
  } catch {
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      'cannot unseal the CA key in the store: wrong CA key secret',
    );
  }
}
