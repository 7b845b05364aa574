/**
 * Join tokens: the proof a proxy gives before it may get a certificate (local mode; the
 * Kubernetes issue adds service-account tokens). One token grants one identity
 * (namespace + service account) until it expires. Only a SHA-256 hash of the secret is
 * stored, so a store dump cannot be replayed; the secret is shown once, at creation.
 *
 * Token text: `hxjt.<id>.<secret>`; `<id>` names the record, `<secret>` is 32 random bytes.
 */
import { HexmeshError } from '../errors/hexmesh-error.ts';
import { isSecretId, mintSecret, parseSecret, secretMatches } from '../util/secret-token.ts';
import type { Store } from '../store/store.ts';

export const TOKENS_PREFIX = '/hexmesh/identity/tokens/';

export interface JoinTokenRecord {
  readonly id: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /**
   * The one instance (proxy id) the token acts for, and that the certificates it gets are
   * bound to; none: any instance of the identity.
   */
  readonly instance?: string;
  /** hex SHA-256 of the secret part. */
  readonly hash: string;
  readonly createdAt: string;
  readonly expiresAt: string;
}

/** What the API shows about a token (never the hash). */
export type JoinTokenInfo = Omit<JoinTokenRecord, 'hash'>;

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** An instance id as the catalog and discovery take it (the proxy id of a certificate request). */
export const INSTANCE_ID = /^[A-Za-z0-9][-A-Za-z0-9_.]{0,252}$/;

const unauthenticated = (why: string) =>
  new HexmeshError('HEXMESH_ERR_UNAUTHENTICATED', `join token refused: ${why}`);

export class JoinTokens {
  readonly #store: Store;
  readonly #now: () => number;

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /**
   * Create a token for `namespace`/`serviceAccount` (and only `instance` of it, if given)
   * valid for `ttlMs`; the text is returned only here.
   */
  async create(
    namespace: string,
    serviceAccount: string,
    ttlMs: number,
    instance?: string,
  ): Promise<{ token: string; info: JoinTokenInfo }> {
    for (const [field, v] of [
      ['namespace', namespace],
      ['serviceAccount', serviceAccount],
    ] as const)
      if (!NAME.test(v))
        throw new HexmeshError(
          'HEXMESH_ERR_BAD_REQUEST',
          `${field} must be a DNS-1123 name (lower-case letters, digits, '-', '.'), got ${JSON.stringify(v)}`,
        );
    if (instance !== undefined && !INSTANCE_ID.test(instance))
      throw new HexmeshError(
        'HEXMESH_ERR_BAD_REQUEST',
        `instance must be letters, digits, '-', '_', '.' (an instance id), got ${JSON.stringify(instance)}`,
      );
    if (!(ttlMs > 0)) throw new HexmeshError('HEXMESH_ERR_BAD_REQUEST', 'ttl must be positive');
    const { token, id, hash } = mintSecret('hxjt');
    const now = this.#now();
    const record: JoinTokenRecord = {
      id,
      namespace,
      serviceAccount,
      ...(instance !== undefined && { instance }),
      hash,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + ttlMs).toISOString(),
    };
    await this.#store.put(TOKENS_PREFIX + id, JSON.stringify(record), { prevModRevision: 0 });
    const { hash: _, ...info } = record;
    return { token, info };
  }

  /** The identity a token grants; 401 (never saying which part was wrong beyond the id) otherwise. */
  async verify(token: string): Promise<JoinTokenInfo> {
    const parsed = parseSecret('hxjt', token);
    if (!parsed) throw unauthenticated('malformed token');
    const kv = await this.#store.get(TOKENS_PREFIX + parsed.id);
    if (!kv) throw unauthenticated(`unknown token ${parsed.id}`);
    const rec = JSON.parse(kv.value) as JoinTokenRecord;
    if (!secretMatches(parsed.secret, rec.hash)) throw unauthenticated(`wrong secret for token ${rec.id}`);
    if (Date.parse(rec.expiresAt) <= this.#now())
      throw unauthenticated(`token ${rec.id} expired at ${rec.expiresAt}`);
    const { hash: _, ...info } = rec;
    return info;
  }

  /** True while the token with this id stands (expired or not): revoking deletes it. */
  async exists(id: string): Promise<boolean> {
    return isSecretId(id) && (await this.#store.get(TOKENS_PREFIX + id)) !== undefined;
  }

  async list(): Promise<JoinTokenInfo[]> {
    const r = await this.#store.range(TOKENS_PREFIX);
    return r.kvs.map((kv) => {
      const { hash: _, ...info } = JSON.parse(kv.value) as JoinTokenRecord;
      return info;
    });
  }

  /** Revoke a token by id; false if there was none. */
  async revoke(id: string): Promise<boolean> {
    if (!isSecretId(id)) return false;
    return (await this.#store.delete(TOKENS_PREFIX + id)).deleted > 0;
  }
}
