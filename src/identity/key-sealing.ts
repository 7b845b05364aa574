/**
 * The intermediate's private key lives in the store so that every control-plane replica
 * can sign. It is sealed with AES-256-GCM under a scrypt-derived key, so a store dump, an
 * etcd backup or a peek at etcd's traffic alone does not give away the CA. The secret is the
 * operator's (`--ca-key-secret-file` or HEXMESH_CA_KEY_SECRET) or, by default, a random one
 * kept in `<data-dir>/ca-seal.key` (0600), outside the store (docs/identity.md, "Where the
 * keys live"). Only a CA without either (an in-process control plane with no data dir) keeps
 * it as PEM.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HexmeshError } from '../errors/hexmesh-error.ts';

/** The default seal key's file in the data dir. */
export const SEAL_KEY_FILE = 'ca-seal.key';

/** Where the default seal key of `dataDir` lives. */
export function sealKeyPath(dataDir: string): string {
  return join(dataDir, SEAL_KEY_FILE);
}

/** The seal key kept in `<dataDir>/ca-seal.key`, or undefined when there is none. */
export function readSealKey(dataDir: string): string | undefined {
  try {
    return readFileSync(sealKeyPath(dataDir), 'utf8').trim() || undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Read the seal key, or make one (32 random bytes, created 0600, never overwritten). */
export function readOrCreateSealKey(dataDir: string): string {
  const existing = readSealKey(dataDir);
  if (existing) return existing;
  const key = randomBytes(32).toString('base64url');
  // 'wx': create only; a concurrent creator wins and its key is read back.
  try {
    const fd = openSync(sealKeyPath(dataDir), 'wx', 0o600);
    try {
      writeSync(fd, `${key}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return readSealKey(dataDir) ?? key;
}

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
      `the CA key in the store is sealed: start the control plane with the same --ca-key-secret-file (or HEXMESH_CA_KEY_SECRET), or with the ${SEAL_KEY_FILE} of the replica that created the CA in its --data-dir`,
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
      `cannot unseal the CA key in the store: wrong CA key secret (--ca-key-secret-file, HEXMESH_CA_KEY_SECRET, or the data dir's ${SEAL_KEY_FILE}: copy the one of the replica that created the CA)`,
    );
  }
}
