/**
 * The control plane's HTTPS identity (docs/api-security.md, "Transport"). With `fromCa`, its
 * serving certificate comes from its own CA: the SPIFFE ID
 * `spiffe://<td>/ns/hexmesh-system/sa/control-plane` (what proxies check) plus DNS/IP SANs
 * for its listen address and advertised names (what curl and people check), renewed at a
 * fraction of its lifetime. Either way, client certificates are verified against the trust
 * bundle, which follows the CA state in the store, so a root rotation reaches the TLS server
 * without a restart; when the active authority changes the serving certificate is re-issued
 * (after a delay that lets proxies learn the new root first, at once when its own root was
 * removed).
 */
import type https from 'node:https';
import { isIP } from 'node:net';
import type { CertificateAuthority } from '../../identity/ca.ts';
import type { ChangeTracker } from '../http/blocking.ts';
import { CA_KEYS } from '../../identity/ca.ts';

export interface ServingTlsOptions {
  ca: CertificateAuthority;
  tracker: ChangeTracker;
  server: https.Server;
  /** An operator's certificate; absent: issue one from the CA. */
  static?: { certPem: string; keyPem: string; clientCaPem?: string };
  /** DNS names and IP addresses for the issued certificate's SANs. */
  names: readonly string[];
  /** Lifetime of the issued certificate (default: the CA's workload lifetime). */
  ttlMs?: number;
  /** Renew after this fraction of the lifetime (default 0.5). */
  renewFraction?: number;
  /** After a rotation starts, re-issue after a random delay in [d, 2d] (default 30 s). */
  rotationDelayMs?: number;
  now?: () => number;
  random?: () => number;
  onError?(err: unknown): void;
}

/** What is served now (the issued certificate, or the operator's). */
export interface ServingState {
  readonly certChainPem: string;
  /** Serial of the issued certificate (undefined for an operator's). */
  readonly serial?: string;
  readonly authority?: string;
  readonly notAfter?: number;
  readonly clientCaPem: string;
}

export class ServingTls {
  readonly #o: ServingTlsOptions;
  readonly #now: () => number;
  readonly #abort = new AbortController();
  #state: (ServingState & { keyPem: string }) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #issuing: Promise<void> | undefined;
  #failures = 0;

  constructor(opts: ServingTlsOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Issue (or load) the certificate and the client trust bundle, then keep both current. */
  async start(): Promise<void> {
    const b = await this.#o.ca.bundle();
    const clientCaPem = this.#o.static?.clientCaPem ?? b.pem;
    if (this.#o.static) {
      this.#set({ certChainPem: this.#o.static.certPem, keyPem: this.#o.static.keyPem, clientCaPem });
    } else await this.#issue(clientCaPem);
    // An operator's clientCaPem is fixed; the CA's bundle is followed.
    if (!this.#o.static?.clientCaPem) void this.#follow(b.revision);
  }

  current(): ServingState | undefined {
    if (!this.#state) return undefined;
    const { keyPem: _key, ...rest } = this.#state;
    return rest;
  }

  /** Stop renewing and following the bundle. Idempotent. */
  close(): void {
    this.#abort.abort();
    clearTimeout(this.#timer);
  }

  #set(s: ServingState & { keyPem: string }): void {
    this.#state = s;
    this.#o.server.setSecureContext({ cert: s.certChainPem, key: s.keyPem, ca: s.clientCaPem });
  }

  #issue(clientCaPem: string): Promise<void> {
    this.#issuing ??= (async () => {
      const { dns, ips } = splitNames(this.#o.names);
      const issued = await this.#o.ca.issueServing({
        dnsNames: dns,
        ipAddresses: ips,
        ...(this.#o.ttlMs !== undefined ? { ttlMs: this.#o.ttlMs } : {}),
      });
      const notBefore = Date.parse(issued.notBefore);
      const notAfter = Date.parse(issued.notAfter);
      this.#set({
        certChainPem: issued.certChainPem,
        keyPem: issued.keyPem,
        serial: issued.serial,
        authority: issued.authority,
        notAfter,
        clientCaPem,
      });
      this.#failures = 0;
      this.#schedule(notBefore + (notAfter - notBefore) * (this.#o.renewFraction ?? 0.5) - this.#now());
    })().finally(() => (this.#issuing = undefined));
    return this.#issuing;
  }

  #schedule(ms: number): void {
    if (this.#abort.signal.aborted || this.#o.static) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#renew(), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    try {
      await this.#issue(this.#state?.clientCaPem ?? (await this.#o.ca.bundle()).pem);
    } catch (e) {
      // Keep serving the current certificate; retry with a capped backoff.
      this.#o.onError?.(e);
      this.#schedule(Math.min(30_000, 500 * 2 ** Math.min(this.#failures++, 10)));
    }
  }

  /** Follow the CA state: a new bundle for client certificates, re-issue when the active authority changed. */
  async #follow(caRevision: number): Promise<void> {
    let caRev = caRevision;
    let index = this.#o.tracker.revision;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await this.#o.tracker.wait(CA_KEYS.state, index, 60_000, signal, true);
      if (signal.aborted) return;
      index = this.#o.tracker.revision;
      try {
        const b = await this.#o.ca.bundle();
        if (b.revision === caRev) {
          // Woken without a change (the tracker lost its watch and cannot rule one out): pace.
          await pause(500);
          continue;
        }
        caRev = b.revision;
        const s = this.#state;
        if (!s) continue;
        if (s.clientCaPem !== b.pem) this.#set({ ...s, clientCaPem: b.pem });
        if (this.#o.static || s.authority === b.active) continue;
        const stillTrusted = (await this.#o.ca.authorities()).authorities.some((a) => a.id === s.authority);
        const d = this.#o.rotationDelayMs ?? 30_000;
        this.#schedule(stillTrusted ? d + (this.#o.random ?? Math.random)() * d : 0);
      } catch (e) {
        if (signal.aborted) return;
        this.#o.onError?.(e);
        await pause(1000);
      }
    }
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function splitNames(names: readonly string[]): { dns: string[]; ips: string[] } {
  const dns = new Set<string>();
  const ips = new Set<string>();
  for (const n of names) (isIP(n) ? ips : dns).add(n);
  return { dns: [...dns], ips: [...ips] };
}
