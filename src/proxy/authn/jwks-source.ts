/**
 * Keys for JWT validation: a JWKS given inline, or fetched from a URL with undici and
 * cached. A token signed with a key the cache does not know (`kid` rotation at the
 * issuer) triggers a refetch, at most once per `cooldownMs`, so a flood of tokens with
 * made-up `kid`s cannot turn the proxy into a load generator against the issuer.
 */
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

/**
 * Largest JWKS read (1 MiB; a real one is a few KiB): a hostile or broken issuer that
 * streams without end is cut off there instead of growing the sidecar's heap.
 */
export const MAX_JWKS_BYTES = 1024 * 1024;

/** What `jwtVerify` needs: a key lookup by protected header. */
export interface JwksSource {
  readonly getKey: JWTVerifyGetKey;
  close(): void;
}

/** An inline JWKS (validated as JSON by the schema). */
export function inlineJwks(json: string): JwksSource {
  const set = createLocalJWKSet(JSON.parse(json) as JSONWebKeySet);
  return { getKey: set, close() {} };
}

export interface RemoteJwksOptions {
  /** Cached keys are refetched after this long (default 5 min, Envoy's default cache duration). */
  cacheMs?: number;
  /** Minimum time between two fetches (default 30 s). */
  cooldownMs?: number;
  /** Fetch timeout (default 5 s). */
  timeoutMs?: number;
  /** Monotonic clock in ms (tests inject one). */
  now?: () => number;
}

/** A JWKS fetched from `uri` and cached. */
export class RemoteJwks implements JwksSource {
  readonly uri: string;
  readonly #cacheMs: number;
  readonly #cooldownMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #set: JWTVerifyGetKey | undefined;
  #fetchedAt = -Infinity;
  #attemptedAt = -Infinity;
  #inflight: Promise<void> | undefined;
  readonly #abort = new AbortController();
  /** Fetches started (for tests and debugging). */
  fetches = 0;

  constructor(uri: string, opts: RemoteJwksOptions = {}) {
    this.uri = uri;
    this.#cacheMs = opts.cacheMs ?? 300_000;
    this.#cooldownMs = opts.cooldownMs ?? 30_000;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#now = opts.now ?? (() => performance.now());
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (this.#set === undefined || this.#now() - this.#fetchedAt >= this.#cacheMs) await this.#refresh();
    if (this.#set === undefined) throw new JwksUnavailableError(this.uri);
    try {
      return await this.#set(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // Unknown kid: the issuer may have rotated its keys. Refetch, within the cooldown.
      if (this.#now() - this.#attemptedAt < this.#cooldownMs) throw err;
      await this.#refresh();
      return this.#set(header, token);
    }
  };

  /** One fetch at a time; a failed fetch keeps the previous keys (stale beats none). */
  #refresh(): Promise<void> {
    if (this.#inflight) return this.#inflight;
    if (this.#set !== undefined && this.#now() - this.#attemptedAt < this.#cooldownMs)
      return Promise.resolve();
    if (this.#set === undefined && this.#now() - this.#attemptedAt < Math.min(this.#cooldownMs, 1000))
      return Promise.resolve();
    this.#attemptedAt = this.#now();
    this.fetches++;
    this.#inflight = this.#fetch()
      .then(
        (set) => {
          this.#set = set;
          this.#fetchedAt = this.#now();
        },
        () => {},
      )
      .finally(() => (this.#inflight = undefined));
    return this.#inflight;
  }

  async #fetch(): Promise<JWTVerifyGetKey> {
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#timeoutMs)]);
    // undici only when a remote JWKS is fetched: an inline one, the common case in tests and
    // static meshes, keeps it out of the sidecar (issue 11).
    const { request } = await import('undici');
    const res = await request(this.uri, { signal, headers: { accept: 'application/json' } });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`JWKS ${this.uri}: HTTP ${res.statusCode}`);
    }
    const announced = Number(res.headers['content-length']);
    if (announced > MAX_JWKS_BYTES) {
      res.body.destroy();
      throw new Error(`JWKS ${this.uri}: ${announced} bytes, more than ${MAX_JWKS_BYTES}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_JWKS_BYTES) {
        res.body.destroy();
        throw new Error(`JWKS ${this.uri}: more than ${MAX_JWKS_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    const doc = JSON.parse(Buffer.concat(chunks, size).toString('utf8')) as JSONWebKeySet;
    if (!Array.isArray(doc?.keys)) throw new Error(`JWKS ${this.uri}: no "keys" array`);
    return createLocalJWKSet(doc);
  }

  close(): void {
    this.#abort.abort();
  }
}

/** The JWKS could not be fetched (and no earlier copy is cached). */
export class JwksUnavailableError extends Error {
  constructor(uri: string) {
    super(`JWKS ${uri} unavailable`);
    this.name = 'JwksUnavailableError';
  }
}
