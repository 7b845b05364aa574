/**
 * Join tokens for the sidecars a runtime starts (docs/identity.md): least privilege — a
 * sidecar gets a token for its own workload identity (namespace + service account) and its
 * own instance only, which authenticates its discovery stream and gets it a workload
 * certificate bound to that instance (so the hops between sidecars are mutual TLS). One
 * token per instance is shared by its restarts; a new one is made once less than half of
 * its lifetime is left, so a
 * sidecar started late still has a token that outlives it by at least half the TTL.
 */
import type { ControlClient } from '../cli/client/control-client.ts';

/**
 * Where a runtime gets a sidecar's join token: bound to the sidecar's instance id, so that
 * neither the token nor the certificate it gets can act for a sibling instance.
 */
export type JoinTokenSource = (
  namespace: string,
  serviceAccount: string,
  instance: string,
) => Promise<string>;

/**
 * Default lifetime: a dev session and then some. A sidecar re-authenticates with its join
 * token whenever its discovery stream reconnects, so the token must outlive the sidecar.
 */
export const DEFAULT_JOIN_TOKEN_TTL_MS = 7 * 24 * 3_600_000;

interface Issued {
  token: string;
  id: string;
  expiresAt: number;
}

export class JoinTokenIssuer {
  readonly #client: ControlClient;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** In-flight or issued, per `namespace/serviceAccount/instance`: concurrent starts share one token. */
  readonly #tokens = new Map<string, Promise<Issued>>();

  /** `client` must carry a credential with `identity:admin` (the bootstrap admin token). */
  constructor(client: ControlClient, opts: { ttlMs?: number; now?: () => number } = {}) {
    this.#client = client;
    this.#ttlMs = opts.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** A join token for `instance` of `namespace`/`serviceAccount`, valid for at least half the TTL. */
  readonly get: JoinTokenSource = async (namespace, serviceAccount, instance) => {
    const key = `${namespace}/${serviceAccount}/${instance}`;
    const cached = this.#tokens.get(key);
    if (cached) {
      const t = await cached.catch(() => undefined);
      if (t && t.expiresAt - this.#now() > this.#ttlMs / 2) return t.token;
      if (this.#tokens.get(key) !== cached) return this.get(namespace, serviceAccount, instance);
    }
    const next = this.#create(namespace, serviceAccount, instance);
    this.#tokens.set(key, next);
    // A failure is not cached: the next start asks again.
    next.catch(() => {
      if (this.#tokens.get(key) === next) this.#tokens.delete(key);
    });
    return (await next).token;
  };

  async #create(namespace: string, serviceAccount: string, instance: string): Promise<Issued> {
    const r = await this.#client.request<{ token: string; id: string; expiresAt: string }>(
      'POST',
      '/v1/identity/tokens',
      {
        body: { namespace, serviceAccount, instance, ttl: `${this.#ttlMs}ms` },
        signal: AbortSignal.timeout(10_000),
      },
    );
    return { token: r.body.token, id: r.body.id, expiresAt: Date.parse(r.body.expiresAt) };
  }

  /**
   * Revoke every token this issuer made (best effort, at clean shutdown), so none outlives
   * the mesh it was made for in the store of the data dir.
   */
  async revokeAll(): Promise<void> {
    const all = [...this.#tokens.values()];
    this.#tokens.clear();
    await Promise.all(
      all.map(async (p) => {
        try {
          const t = await p;
          await this.#client.request('DELETE', `/v1/identity/tokens/${encodeURIComponent(t.id)}`, {
            signal: AbortSignal.timeout(3000),
            accept: [404],
          });
        } catch {}
      }),
    );
  }
}
