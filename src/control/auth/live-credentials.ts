/**
 * Credentials of the requests that outlive their authentication: a watch, a tap, a blocking
 * query, a discovery WebSocket. Each holds its caller's credential here and is cut, once and
 * with the reason, when that credential is revoked (an API token or join token deleted), expires,
 * or, for a workload certificate, when the join token it was got with is revoked or a root
 * rotation removes the authority that issued it.
 * As Kubernetes closes a watch when its token expires and Consul re-checks the ACL token of a
 * blocking query: a revocation reaches open streams, not only the next request.
 *
 * Revocations are followed through the store (one watch per prefix), so a token revoked on one
 * replica cuts the streams it opened on every replica. A connection kept alive is checked on
 * every request instead (api-auth.ts); `staleCertificate` is that check for a client certificate
 * the TLS server verified when the connection was made.
 */
import { X509Certificate } from 'node:crypto';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { CA_KEYS, type CaState } from '../../identity/ca.ts';
import { TOKENS_PREFIX } from '../../identity/join-tokens.ts';
import type { Store, Watcher } from '../../store/store.ts';
import type { Credential, Principal } from './api-auth.ts';
import { API_TOKENS_PREFIX } from './api-tokens.ts';

export interface LiveCredentialsOptions {
  store: Store;
  now?: () => number;
  /** A store watch broke or a re-check failed (the streams stay up until it is known). */
  onError?(err: unknown): void;
}

interface Holder {
  readonly credential: Credential;
  readonly cut: (err: HexmeshError) => void;
  timer?: NodeJS.Timeout;
  done: boolean;
}

/** The longest a Node timer waits; an expiry further out is re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Authorities recognised per certificate fingerprint before the cache is emptied. */
const MAX_CACHED_CERTS = 10_000;
const noop = (): void => {};

export class LiveCredentials {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #onError: (err: unknown) => void;
  /** Token holders by the store key of their token's record. */
  readonly #tokens = new Map<string, Set<Holder>>();
  readonly #certs = new Set<Holder>();
  /** The CA's authorities now (id → intermediate), and those a rotation removed since start. */
  #authorities = new Map<string, X509Certificate>();
  readonly #removed = new Map<string, X509Certificate>();
  /** Certificate fingerprint → the id of the authority that issued it. */
  readonly #issuer = new Map<string, string>();
  #loading: Promise<void> = Promise.resolve();
  #watchers: Watcher[] = [];
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: LiveCredentialsOptions) {
    this.#store = opts.store;
    this.#now = opts.now ?? Date.now;
    this.#onError = opts.onError ?? noop;
  }

  /** Load the CA's authorities and follow revocations and rotations from now on. */
  async start(): Promise<void> {
    const rev = await this.#store.revision();
    await this.#loadAuthorities();
    this.#watch(rev + 1);
  }

  /**
   * Hold `p`'s credential for a long-lived answer: `cut` is called once, with a 401 error naming
   * why, when it is revoked, expires or loses its authority. Returns the release (idempotent).
   * Without a principal (auth off, public route) there is nothing to hold.
   */
  hold(p: Principal | undefined, cut: (err: HexmeshError) => void): () => void {
    const credential = p?.credential;
    if (!credential || this.#closed) return noop;
    const h: Holder = { credential, cut, done: false };
    if (credential.kind === 'certificate') {
      this.#certs.add(h);
      const stale = this.staleCertificate(credential.spiffeId, credential.cert);
      if (stale !== undefined) {
        this.#cut(h, stale);
        return noop;
      }
    }
    const key = revocationKey(credential);
    if (key !== undefined) {
      let set = this.#tokens.get(key);
      if (!set) this.#tokens.set(key, (set = new Set()));
      set.add(h);
      // Revoked between its verification and now: the watch event may already be past.
      void this.#store.get(key).then(
        (kv) => kv === undefined && this.#cut(h, revoked(credential)),
        (err: unknown) => this.#onError(err),
      );
    }
    this.#arm(h);
    return () => this.#release(h);
  }

  /**
   * Why a client certificate verified earlier no longer authenticates (expired; issued by an
   * authority a rotation removed), or undefined. A certificate of another CA (an operator's
   * `clientCaPem`) is judged by its expiry only.
   */
  staleCertificate(spiffeId: string, cert: X509Certificate): string | undefined {
    const notAfter = Date.parse(cert.validTo);
    if (notAfter <= this.#now())
      return `client certificate ${spiffeId} expired at ${new Date(notAfter).toISOString()}`;
    const authority = this.#issuerOf(cert);
    if (authority !== undefined && !this.#authorities.has(authority))
      return `client certificate ${spiffeId}: its authority ${authority} was removed by a root rotation`;
    return undefined;
  }

  /** Stop following the store and forget every holder (without cutting them). Idempotent. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    for (const w of this.#watchers.splice(0)) w.close();
    for (const set of this.#tokens.values()) for (const h of set) clearTimeout(h.timer);
    for (const h of this.#certs) clearTimeout(h.timer);
    this.#tokens.clear();
    this.#certs.clear();
  }

  #watch(fromRevision: number): void {
    if (this.#closed) return;
    const onError = (err: Error): void => {
      if (this.#closed || this.#retry) return;
      this.#onError(err);
      for (const w of this.#watchers.splice(0)) w.close();
      // Events may have been missed: check every holder against the store, then watch again.
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        void this.#store.revision().then(
          (rev) => {
            this.#watch(rev + 1);
            this.#recheckAll();
          },
          (e: Error) => onError(e),
        );
      }, 1000);
      this.#retry.unref();
    };
    const onTokens = (events: readonly { type: string; kv: { key: string } }[]): void => {
      for (const e of events)
        if (e.type === 'delete')
          for (const h of [...(this.#tokens.get(e.kv.key) ?? [])]) this.#cut(h, revoked(h.credential));
    };
    this.#watchers = [
      this.#store.watch(API_TOKENS_PREFIX, { fromRevision, onEvents: onTokens, onError }),
      this.#store.watch(TOKENS_PREFIX, { fromRevision, onEvents: onTokens, onError }),
      this.#store.watch(CA_KEYS.state, {
        fromRevision,
        onEvents: () => void this.#loadAuthorities(),
        onError,
      }),
    ];
  }

  #recheckAll(): void {
    for (const [key, set] of this.#tokens)
      void this.#store.get(key).then(
        (kv) => {
          if (kv === undefined) for (const h of [...set]) this.#cut(h, revoked(h.credential));
        },
        (err: unknown) => this.#onError(err),
      );
    void this.#loadAuthorities();
  }

  /** Read the CA's authorities; cut the certificate holders whose authority is gone. Serialised. */
  #loadAuthorities(): Promise<void> {
    this.#loading = this.#loading.then(async () => {
      try {
        const kv = await this.#store.get(CA_KEYS.state);
        const state = kv === undefined ? undefined : (JSON.parse(kv.value) as CaState);
        const next = new Map<string, X509Certificate>();
        for (const a of state?.authorities ?? [])
          next.set(a.id, this.#authorities.get(a.id) ?? new X509Certificate(a.intermediateCertPem));
        let removed = false;
        for (const [id, cert] of this.#authorities)
          if (!next.has(id)) {
            this.#removed.set(id, cert);
            removed = true;
          }
        this.#authorities = next;
        if (!removed) return;
        for (const h of [...this.#certs]) {
          const c = h.credential as Extract<Credential, { kind: 'certificate' }>;
          const stale = this.staleCertificate(c.spiffeId, c.cert);
          if (stale !== undefined) this.#cut(h, stale);
        }
      } catch (err) {
        this.#onError(err);
      }
    });
    return this.#loading;
  }

  /** The authority (current or removed) whose intermediate signed `cert`; cached when found. */
  #issuerOf(cert: X509Certificate): string | undefined {
    const fp = cert.fingerprint256;
    const known = this.#issuer.get(fp);
    if (known !== undefined) return known;
    for (const authorities of [this.#authorities, this.#removed])
      for (const [id, intermediate] of authorities)
        if (cert.checkIssued(intermediate) && cert.verify(intermediate.publicKey)) {
          if (this.#issuer.size >= MAX_CACHED_CERTS) this.#issuer.clear();
          this.#issuer.set(fp, id);
          return id;
        }
    return undefined;
  }

  #arm(h: Holder): void {
    const at = h.credential.expiresAt;
    if (at === undefined || h.done) return;
    const ms = at - this.#now();
    h.timer = setTimeout(
      () => (ms > MAX_TIMER_MS ? this.#arm(h) : this.#cut(h, expired(h.credential, at))),
      Math.max(0, Math.min(ms, MAX_TIMER_MS)),
    );
    h.timer.unref();
  }

  #cut(h: Holder, why: string): void {
    if (h.done) return;
    this.#release(h);
    h.cut(new HexmeshError('HEXMESH_ERR_UNAUTHENTICATED', why));
  }

  #release(h: Holder): void {
    if (h.done) return;
    h.done = true;
    clearTimeout(h.timer);
    if (h.credential.kind === 'certificate') this.#certs.delete(h);
    const key = revocationKey(h.credential);
    if (key === undefined) return;
    const set = this.#tokens.get(key);
    set?.delete(h);
    if (set?.size === 0) this.#tokens.delete(key);
  }
}

/** The store key whose deletion revokes `c`: its token's record, or a certificate's join token. */
function revocationKey(c: Credential): string | undefined {
  if (c.kind === 'api-token') return API_TOKENS_PREFIX + c.id;
  if (c.kind === 'join-token') return TOKENS_PREFIX + c.id;
  return c.joinToken === undefined ? undefined : TOKENS_PREFIX + c.joinToken;
}

const what = (c: Credential): string =>
  c.kind === 'api-token'
    ? `API token ${c.id}`
    : c.kind === 'join-token'
      ? `join token ${c.id}`
      : `client certificate ${c.spiffeId}`;

function revoked(c: Credential): string {
  return c.kind === 'certificate'
    ? `${what(c)}: its join token ${c.joinToken} was revoked`
    : `${what(c)} was revoked`;
}

function expired(c: Credential, at: number): string {
  return `${what(c)} expired at ${new Date(at).toISOString()}`;
}
