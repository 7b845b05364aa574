/**
 * A sidecar's last good state on disk (`hexmesh proxy --cache-dir`): the last config the
 * control plane sent that this proxy put in force, and its workload certificate, key and
 * trust bundle. A sidecar that restarts while the control plane is unreachable starts from
 * them instead of waiting (forever) for a first snapshot — static stability across a
 * restart, as Envoy's and Consul's agents keep theirs.
 *
 * The key is a secret: the directory is 0700 (a looser existing one is tightened, with a
 * line saying so), every file 0600, written atomically (temp file + rename), so a crash
 * mid-write leaves the previous file. A cached certificate past its notAfter is never
 * served: it is refused with a log line, and the proxy waits for the control plane.
 */
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { workloadCertificate } from '../../identity/static-identity-source.ts';
import type { IdentitySource, WorkloadCertificate } from '../../identity/identity-source.ts';
import { writeFileAtomic } from '../../template/atomic-write.ts';
import type { SnapshotMessage } from './config-state.ts';

/** The config part: what a snapshot would carry, plus the subscriptions that asked for it. */
export type CachedConfig = SnapshotMessage & { savedAt: number };

interface CachedIdentity {
  certChainPem: string;
  keyPem: string;
  bundlePem: string;
  savedAt: number;
}

export class LastGoodCache {
  readonly dir: string;
  readonly #log: (line: string) => void;
  readonly #now: () => number;

  constructor(dir: string, o: { log?: (line: string) => void; now?: () => number } = {}) {
    this.dir = dir;
    this.#log = o.log ?? (() => {});
    this.#now = o.now ?? Date.now;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const mode = statSync(dir).mode & 0o777;
    if (mode !== 0o700) {
      chmodSync(dir, 0o700);
      this.#log(`cache: ${dir} was mode ${mode.toString(8)}; now 0700 (it holds the workload key)`);
    }
  }

  get #configFile(): string {
    return join(this.dir, 'config.json');
  }
  get #identityFile(): string {
    return join(this.dir, 'identity.json');
  }

  async saveConfig(c: SnapshotMessage): Promise<void> {
    await this.#write(this.#configFile, { ...c, savedAt: this.#now() });
  }

  /** The last good config, or undefined (none saved, or unreadable: said in the log). */
  loadConfig(): CachedConfig | undefined {
    const c = this.#read<CachedConfig>(this.#configFile);
    if (c && (typeof c.version !== 'number' || !Array.isArray(c.services) || !Array.isArray(c.resources))) {
      this.#log(`cache: ${this.#configFile} is not a saved config; ignored`);
      return undefined;
    }
    return c;
  }

  async saveIdentity(cert: WorkloadCertificate, bundlePem: string): Promise<void> {
    const v: CachedIdentity = {
      certChainPem: cert.certChainPem,
      keyPem: cert.keyPem,
      bundlePem,
      savedAt: this.#now(),
    };
    await this.#write(this.#identityFile, v);
  }

  /** The saved certificate and bundle while the certificate is valid; an expired one is refused (logged). */
  loadIdentity(): { cert: WorkloadCertificate; bundlePem: string } | undefined {
    const v = this.#read<CachedIdentity>(this.#identityFile);
    if (!v) return undefined;
    let cert: WorkloadCertificate;
    try {
      cert = workloadCertificate(v.certChainPem, v.keyPem);
    } catch (err) {
      this.#log(`cache: the saved workload certificate is unusable (${(err as Error).message}); not used`);
      return undefined;
    }
    if (cert.notAfter.getTime() <= this.#now()) {
      this.#log(
        `cache: the saved workload certificate for ${cert.spiffeId} expired at ${cert.notAfter.toISOString()}; ` +
          'not used: waiting for the control plane to issue a new one',
      );
      return undefined;
    }
    return { cert, bundlePem: v.bundlePem };
  }

  async #write(path: string, v: unknown): Promise<void> {
    try {
      await writeFileAtomic(path, `${JSON.stringify(v)}\n`, 0o600);
    } catch (err) {
      this.#log(`cache: cannot write ${path}: ${(err as Error).message}`);
    }
  }

  #read<T>(path: string): T | undefined {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      this.#log(`cache: ${path} is not valid JSON; ignored`);
      return undefined;
    }
  }
}

/**
 * The control plane's identity source with the cached certificate behind it: the cached
 * one (while valid) until the control plane issues one; every certificate the control
 * plane issues is saved for the next start.
 */
export class CachedIdentitySource implements IdentitySource {
  readonly #live: IdentitySource;
  readonly #cached: { cert: WorkloadCertificate; bundlePem: string } | undefined;
  readonly #now: () => number;

  constructor(live: IdentitySource, cache: LastGoodCache, now: () => number = Date.now) {
    this.#live = live;
    this.#now = now;
    this.#cached = cache.loadIdentity();
    live.onChange(() => {
      const c = live.current();
      const bundle = live.trustBundlePem();
      if (c && bundle) void cache.saveIdentity(c, bundle);
    });
  }

  /** Whether the certificate in use is the cached one (the control plane has issued none yet). */
  get fromCache(): boolean {
    return this.#live.current() === undefined && this.current() !== undefined;
  }

  current(): WorkloadCertificate | undefined {
    const live = this.#live.current();
    if (live) return live;
    const c = this.#cached?.cert;
    return c && c.notAfter.getTime() > this.#now() ? c : undefined;
  }

  trustBundlePem(): string {
    return this.#live.trustBundlePem() || (this.#cached?.bundlePem ?? '');
  }

  onChange(listener: () => void): () => void {
    return this.#live.onChange(listener);
  }
}
