/**
 * The proxy's identity from the control plane's CA. The proxy makes its own key (it is
 * never sent), asks for a certificate with a CSR (proof: the join token the first time,
 * the current certificate afterwards), renews at half the lifetime, retries with
 * jittered backoff, and keeps serving the old certificate until a new one arrives. The
 * trust bundle follows the control plane through a blocking query; when a new root
 * appears (a rotation started) it re-issues soon, after a jittered delay that lets every
 * peer learn the new root first.
 */
import { readFile } from 'node:fs/promises';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { IdentitySource, WorkloadCertificate } from './identity-source.ts';
import { createKeyAndCsr, renewalSignature } from './csr.ts';
import { workloadCertificate } from './static-identity-source.ts';
import { splitPemCerts } from './x509.ts';
import { controlRequest, controlTlsOptions, type ControlTlsState } from './control-tls.ts';
import type { ConnectionOptions } from 'node:tls';

export interface ControlIdentitySourceOptions {
  /** Control plane URLs (`http://host:7070` or `https://...`); the next is tried after a failure. */
  urls: readonly string[];
  /**
   * The CA that vouches for an HTTPS control plane before the trust bundle is known
   * (`--control-ca`, e.g. the control plane's `ca-bundle.pem`); default: the system roots.
   */
  controlCaPem?: string;
  /** Proof for the first certificate (and whenever a renewal proof is refused). */
  joinToken?: string;
  /**
   * Instead of `joinToken`: a file holding the proof — a projected ServiceAccount token
   * (audience `hexmesh`) on Kubernetes. Read at each use, so the token the kubelet rotates
   * in place is the one sent (docs/kubernetes.md).
   */
  tokenFile?: string;
  /** Tracked per proxy on the control plane (rotation status, `hexmesh check`). */
  proxyId?: string;
  /** Ask for this SPIFFE ID; default: the identity the join token grants. */
  spiffeId?: string;
  /** Fraction of the lifetime after which to renew (default 0.5). */
  renewFraction?: number;
  /** Retry backoff after a failed request: full jitter in [base·2^n / 2, base·2^n], capped (default 500 ms .. 30 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Blocking-query wait for the bundle (default 5 min). */
  bundleWaitMs?: number;
  /** After a new root appears, re-issue after a random delay in [d, 2d] (default 30 s). */
  rotationRenewDelayMs?: number;
  now?: () => number;
  random?: () => number;
  /** Progress and failures, for the proxy's log. Never given a key or a token. */
  log?: (line: string) => void;
}

export class ControlIdentitySource implements IdentitySource {
  readonly #o: ControlIdentitySourceOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #listeners = new Set<() => void>();
  readonly #abort = new AbortController();
  #cert: WorkloadCertificate | undefined;
  #roots: string[] = [];
  #trustDomain: string | undefined;
  #urlIndex = 0;
  #certTimer: NodeJS.Timeout | undefined;
  #issuing = false;
  #certFailures = 0;
  #started = false;
  #closed = false;
  readonly #firstCert: Promise<void>;
  #resolveFirst!: () => void;

  constructor(opts: ControlIdentitySourceOptions) {
    if (!opts.urls.length)
      throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', 'identity: no control plane URL');
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#firstCert = new Promise((r) => (this.#resolveFirst = r));
  }

  /** Begin: fetch the bundle and the first certificate, then keep both fresh. Idempotent. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#scheduleIssue(0);
    void this.#bundleLoop();
  }

  /** Resolves once the first certificate and a trust bundle are in hand (or rejects on `signal`). */
  async ready(signal?: AbortSignal): Promise<void> {
    const aborted = new Promise<never>((_, reject) => {
      const fail = () => reject(new HexmeshError('HEXMESH_ERR_TIMEOUT', 'identity: no certificate yet'));
      if (signal?.aborted) fail();
      signal?.addEventListener('abort', fail, { once: true });
    });
    await Promise.race([this.#firstCert, aborted]);
  }

  current(): WorkloadCertificate | undefined {
    return this.#cert;
  }

  trustBundlePem(): string {
    return this.#roots.join('');
  }

  /**
   * TLS options for a connection to the control plane at `url` (undefined for plain HTTP):
   * the server is verified against the trust bundle (its SPIFFE ID stands for its name), and
   * the current certificate, while valid, is presented as the client certificate, so the
   * control plane authenticates this workload by mTLS and the join token is not needed.
   */
  controlTls(url: string): ConnectionOptions | undefined {
    const cert = this.#cert && this.#cert.notAfter.getTime() > this.#now() ? this.#cert : undefined;
    const state: ControlTlsState = {
      ...(cert ? { cert } : {}),
      ...(this.#roots.length ? { bundlePem: this.#roots.join('') } : {}),
      ...(this.#trustDomain ? { trustDomain: this.#trustDomain } : {}),
      ...(this.#o.controlCaPem ? { caPem: this.#o.controlCaPem } : {}),
    };
    return controlTlsOptions(url, state);
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stop renewing and polling. Idempotent; the current certificate stays readable. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#certTimer);
    this.#abort.abort();
  }

  #emit(): void {
    if (this.#cert && this.#roots.length) this.#resolveFirst();
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch (e) {
        this.#o.log?.(`identity: change listener failed: ${(e as Error).message}`);
      }
    }
  }

  #url(path: string): string {
    return this.#o.urls[this.#urlIndex % this.#o.urls.length].replace(/\/+$/, '') + path;
  }

  #backoff(failures: number): number {
    const base = this.#o.retryBaseMs ?? 500;
    const cap = Math.min(this.#o.retryMaxMs ?? 30_000, base * 2 ** Math.min(failures, 20));
    return cap / 2 + (this.#random() * cap) / 2;
  }

  #scheduleIssue(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#certTimer);
    this.#certTimer = setTimeout(() => void this.#issue(), Math.max(0, Math.min(delayMs, 2 ** 31 - 1)));
  }

  async #issue(): Promise<void> {
    if (this.#closed || this.#issuing) return;
    this.#issuing = true;
    try {
      const spiffeId = this.#o.spiffeId ?? this.#cert?.spiffeId;
      const kc = await createKeyAndCsr(spiffeId ? { spiffeId } : {});
      const cur = this.#cert;
      const renewable = cur !== undefined && cur.notAfter.getTime() > this.#now();
      let answer = await this.#request(
        renewable
          ? {
              csr: kc.csrPem,
              renewal: { certificate: cur.certChainPem, signature: renewalSignature(cur.keyPem, kc.csrPem) },
            }
          : { csr: kc.csrPem, token: await this.#token() },
      );
      // A renewal proof can be refused (the old root was removed by force): the token may still do.
      if (answer.status === 401 && renewable && (this.#o.joinToken || this.#o.tokenFile))
        answer = await this.#request({ csr: kc.csrPem, token: await this.#token() });
      if (answer.status !== 200) throw new HexmeshError('HEXMESH_ERR_UNAUTHENTICATED', answer.message);
      const next = workloadCertificate(answer.certChainPem!, kc.keyPem);
      this.#cert = next;
      this.#certFailures = 0;
      this.#o.log?.(`identity: certificate for ${next.spiffeId} valid until ${next.notAfter.toISOString()}`);
      this.#emit();
      const life = next.notAfter.getTime() - next.notBefore.getTime();
      this.#scheduleIssue(next.notBefore.getTime() + life * (this.#o.renewFraction ?? 0.5) - this.#now());
    } catch (e) {
      if (this.#closed) return;
      this.#certFailures++;
      this.#urlIndex++;
      const wait = this.#backoff(this.#certFailures);
      this.#o.log?.(
        `identity: certificate request failed (${(e as Error).message}); retrying in ${Math.round(wait)} ms` +
          (this.#cert ? `, serving the current certificate until ${this.#cert.notAfter.toISOString()}` : ''),
      );
      this.#scheduleIssue(wait);
    } finally {
      this.#issuing = false;
    }
  }

  /** The join token, or the token file's current content (re-read each time: it rotates). */
  async #token(): Promise<string | undefined> {
    if (this.#o.joinToken || !this.#o.tokenFile) return this.#o.joinToken;
    try {
      return (await readFile(this.#o.tokenFile, 'utf8')).trim() || undefined;
    } catch (e) {
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        `cannot read the token file ${this.#o.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  }

  async #request(body: object): Promise<{ status: number; message: string; certChainPem?: string }> {
    const url = this.#url('/v1/identity/certificate');
    const res = await controlRequest(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, ...(this.#o.proxyId ? { proxyId: this.#o.proxyId } : {}) }),
        signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(30_000)]),
      },
      this.controlTls(url),
    );
    let json: { certChainPem?: string; error?: { message?: string } } = {};
    try {
      json = JSON.parse(res.body) as typeof json;
    } catch {
      // not JSON: the status says enough
    }
    return {
      status: res.status,
      message: json.error?.message ?? `HTTP ${res.status}`,
      ...(json.certChainPem ? { certChainPem: json.certChainPem } : {}),
    };
  }

  async #bundleLoop(): Promise<void> {
    let index: number | undefined;
    let failures = 0;
    const wait = this.#o.bundleWaitMs ?? 300_000;
    while (!this.#closed) {
      try {
        const q = index === undefined ? '' : `&index=${index}&wait=${wait}ms`;
        const url = this.#url(`/v1/identity/bundle?format=json${q}`);
        const res = await controlRequest(
          url,
          { signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(wait * 1.2 + 30_000)]) },
          this.controlTls(url),
        );
        if (res.status !== 200) throw new Error(`bundle: HTTP ${res.status}`);
        const b = JSON.parse(res.body) as { roots: string[]; trustDomain?: string };
        if (b.trustDomain) this.#trustDomain = b.trustDomain;
        const next = Number(res.headers['x-hexmesh-index']);
        // A backwards index (store restored) resets, as for every blocking query.
        index = Number.isFinite(next) && (index === undefined || next >= index) ? next : undefined;
        failures = 0;
        this.#setRoots(b.roots.flatMap(splitPemCerts));
      } catch (e) {
        if (this.#closed) return;
        failures++;
        this.#urlIndex++;
        index = undefined;
        const ms = this.#backoff(failures);
        this.#o.log?.(
          `identity: trust bundle refresh failed (${(e as Error).message}); retrying in ${Math.round(ms)} ms`,
        );
        await new Promise<void>((r) => {
          const t = setTimeout(r, ms);
          this.#abort.signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
        });
      }
    }
  }

  #setRoots(roots: string[]): void {
    const before = new Set(this.#roots);
    const same = roots.length === this.#roots.length && roots.every((r) => before.has(r));
    if (same) return;
    const added = this.#roots.length > 0 && roots.some((r) => !before.has(r));
    this.#roots = roots;
    this.#o.log?.(`identity: trust bundle now has ${roots.length} root(s)`);
    this.#emit();
    if (added && this.#cert) {
      // A rotation started: re-issue from the new intermediate once peers trust the new root.
      const d = this.#o.rotationRenewDelayMs ?? 30_000;
      const delay = d + this.#random() * d;
      const due =
        this.#cert.notBefore.getTime() +
        (this.#cert.notAfter.getTime() - this.#cert.notBefore.getTime()) * (this.#o.renewFraction ?? 0.5) -
        this.#now();
      if (delay < due) this.#scheduleIssue(delay);
    }
  }
}
