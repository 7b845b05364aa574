/**
 * API tokens for people and scripts: `hxat.<id>.<secret>` with a role, an optional expiry
 * and a name. Only the hash is stored (src/util/secret-token.ts); the token text is
 * returned once, by `create`. Revocation deletes the record: the next request with that
 * token is refused (verification reads the store every time, so every replica agrees).
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Store } from '../../store/store.ts';
import { isSecretId, mintSecret, parseSecret, secretMatches } from '../../util/secret-token.ts';
import { isRole, ROLES, type Role } from './roles.ts';

export const API_TOKENS_PREFIX = '/hexmesh/auth/tokens/';
export const API_TOKEN_PREFIX = 'hxat';

export interface ApiTokenRecord {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  /** hex SHA-256 of the secret part. */
  readonly hash: string;
  readonly createdAt: string;
  /** Absent: never expires. */
  readonly expiresAt?: string;
  /**
   * Role workload: the one identity the token stands for (its service = service account, in
   * its namespace). A workload token without one is refused for every workload action.
   */
  readonly subject?: TokenSubject;
}

/** The workload identity a workload API token is bound to. */
export interface TokenSubject {
  readonly namespace: string;
  readonly service: string;
  /** Narrower still: the one instance (catalog id = discovery node id) the token acts for. */
  readonly instance?: string;
}

/** What the API shows about a token (never the hash, never the secret). */
export type ApiTokenInfo = Omit<ApiTokenRecord, 'hash'>;

const NAME = /^[A-Za-z0-9][-A-Za-z0-9_.@]{0,62}$/;
/** A service or namespace: a DNS-1123 name, as join tokens and the catalog take them. */
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** An instance id, as the catalog and the discovery protocol take it. */
const INSTANCE_ID = /^[A-Za-z0-9][-A-Za-z0-9_.:]{0,127}$/;

const refused = (why: string) => new HexmeshError('HEXMESH_ERR_UNAUTHENTICATED', `API token refused: ${why}`);

function info(rec: ApiTokenRecord): ApiTokenInfo {
  const { hash: _, ...rest } = rec;
  return rest;
}

/** A workload token must name its service; other roles must not (they are not one workload). */
function checkSubject(role: Role, subject: TokenSubject | undefined): TokenSubject | undefined {
  if (role !== 'workload') {
    if (subject)
      throw new HexmeshError(
        'HEXMESH_ERR_BAD_REQUEST',
        `service binds only a token of role workload (got role ${role})`,
      );
    return undefined;
  }
  if (!subject)
    throw new HexmeshError(
      'HEXMESH_ERR_BAD_REQUEST',
      'a token of role workload must be bound to one service (service, and namespace unless default)',
    );
  for (const [field, v] of [
    ['service', subject.service],
    ['namespace', subject.namespace],
  ] as const)
    if (!DNS_NAME.test(v))
      throw new HexmeshError(
        'HEXMESH_ERR_BAD_REQUEST',
        `${field} must be a DNS-1123 name (lower-case letters, digits, '-', '.'), got ${JSON.stringify(v)}`,
      );
  if (subject.instance !== undefined && !INSTANCE_ID.test(subject.instance))
    throw new HexmeshError(
      'HEXMESH_ERR_BAD_REQUEST',
      `instance must be an instance id (letters, digits, '-', '_', '.', ':'), got ${JSON.stringify(subject.instance)}`,
    );
  return {
    namespace: subject.namespace,
    service: subject.service,
    ...(subject.instance !== undefined && { instance: subject.instance }),
  };
}

export class ApiTokens {
  readonly #store: Store;
  readonly #now: () => number;

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** Create a token; the text is returned only here. `ttlMs` absent: no expiry. */
  async create(opts: {
    name: string;
    role: Role;
    ttlMs?: number;
    /** Required for role workload (and only for it): the identity the token acts as. */
    subject?: TokenSubject;
  }): Promise<{ token: string; info: ApiTokenInfo }> {
    if (!NAME.test(opts.name))
      throw new HexmeshError(
        'HEXMESH_ERR_BAD_REQUEST',
        `name must be 1-63 letters, digits, '-', '_', '.', '@' (got ${JSON.stringify(opts.name)})`,
      );
    if (!isRole(opts.role))
      throw new HexmeshError(
        'HEXMESH_ERR_BAD_REQUEST',
        `role must be one of ${ROLES.join(', ')} (got ${JSON.stringify(opts.role)})`,
      );
    if (opts.ttlMs !== undefined && !(opts.ttlMs > 0))
      throw new HexmeshError('HEXMESH_ERR_BAD_REQUEST', 'ttl must be positive');
    const subject = checkSubject(opts.role, opts.subject);
    const { token, id, hash } = mintSecret(API_TOKEN_PREFIX);
    const now = this.#now();
    const record: ApiTokenRecord = {
      id,
      name: opts.name,
      role: opts.role,
      hash,
      createdAt: new Date(now).toISOString(),
      ...(opts.ttlMs !== undefined && { expiresAt: new Date(now + opts.ttlMs).toISOString() }),
      ...(subject && { subject }),
    };
    await this.#store.put(API_TOKENS_PREFIX + id, JSON.stringify(record), { prevModRevision: 0 });
    return { token, info: info(record) };
  }

  /** The token's record, or 401 naming the token id only (never the secret). */
  async verify(token: string): Promise<ApiTokenInfo> {
    const parsed = parseSecret(API_TOKEN_PREFIX, token);
    if (!parsed) throw refused('malformed token');
    const kv = await this.#store.get(API_TOKENS_PREFIX + parsed.id);
    if (!kv) throw refused(`unknown or revoked token ${parsed.id}`);
    const rec = JSON.parse(kv.value) as ApiTokenRecord;
    if (!secretMatches(parsed.secret, rec.hash)) throw refused(`wrong secret for token ${rec.id}`);
    if (rec.expiresAt !== undefined && Date.parse(rec.expiresAt) <= this.#now())
      throw refused(`token ${rec.id} expired at ${rec.expiresAt}`);
    return info(rec);
  }

  async list(): Promise<ApiTokenInfo[]> {
    const r = await this.#store.range(API_TOKENS_PREFIX);
    return r.kvs.map((kv) => info(JSON.parse(kv.value) as ApiTokenRecord));
  }

  /** Revoke by id; false if there was none. */
  async revoke(id: string): Promise<boolean> {
    if (!isSecretId(id)) return false;
    return (await this.#store.delete(API_TOKENS_PREFIX + id)).deleted > 0;
  }
}
