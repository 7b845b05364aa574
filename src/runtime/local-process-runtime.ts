/**
 * `LocalProcessRuntime`: the Runtime of `hexmesh up` — every instance is two child
 * processes on this machine (sidecar + app, see LocalInstance). Health comes from the
 * catalog, where each sidecar reports its own app's checks; the runtime polls it once a
 * second for the services it runs.
 */
import { mkdirSync } from 'node:fs';
import { ControlClient } from '../cli/client/control-client.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { JoinTokenSource } from './join-token-issuer.ts';
import { LocalInstance } from './local-instance.ts';
import type { Watchdog } from './watchdog.ts';
import type { Instance } from '../control/catalog/instance.ts';
import type {
  InstanceHandle,
  InstanceHealth,
  InstanceInfo,
  InstanceSpec,
  Runtime,
  RuntimeEvent,
  StopOptions,
} from './runtime.ts';

export interface LocalProcessRuntimeOptions {
  /** The control plane the sidecars join (`http://127.0.0.1:7070`). */
  controlUrl: string;
  /**
   * API token for the runtime's own calls (catalog reads, deregistration): `catalog:read` and
   * `catalog:write` (docs/api-security.md). Needed when the control plane enforces auth.
   */
  token?: string;
  /**
   * Each sidecar's join token for its workload identity (JoinTokenIssuer.get): it
   * authenticates the sidecar's discovery stream and gets it a certificate (mTLS between
   * sidecars). Without it sidecars join unauthenticated, which only a control plane with
   * auth off accepts.
   */
  joinToken?: JoinTokenSource;
  /** Where `<instance>.log` and `<instance>.sidecar.log` go. */
  logDir: string;
  /** Kills every instance's processes if this process dies (watchdog.ts; `hexmesh up`). */
  watchdog?: Watchdog;
  /** Each sidecar's last good config and certificate go to `<cacheDir>/<instance>` (`hexmesh up`: `<data-dir>/cache`). */
  cacheDir?: string;
  /** Catalog poll period (default 1 s). */
  healthPollMs?: number;
  /** See LocalInstanceOptions. */
  deregisterSettleMs?: number;
  sidecarReadyTimeoutMs?: number;
}

/** What the health poll reads of a catalog instance. */
type CatalogInstance = Pick<Instance, 'id' | 'status' | 'output'>;

export class LocalProcessRuntime implements Runtime {
  readonly #o: LocalProcessRuntimeOptions;
  readonly #client: ControlClient;
  readonly #instances = new Map<string, LocalInstance>();
  readonly #listeners = new Set<(e: RuntimeEvent) => void>();
  readonly #poll: NodeJS.Timeout;
  #polling = false;
  #closed = false;

  constructor(o: LocalProcessRuntimeOptions) {
    this.#o = o;
    this.#client = new ControlClient(o.controlUrl, o.token ? { token: o.token } : {});
    mkdirSync(o.logDir, { recursive: true });
    this.#poll = setInterval(() => void this.refreshHealth(), o.healthPollMs ?? 1000);
    this.#poll.unref();
  }

  async startInstance(spec: InstanceSpec): Promise<InstanceHandle> {
    if (this.#closed) throw new HexmeshError('HEXMESH_ERR_DRAINING', 'the runtime is closed');
    if (this.#instances.has(spec.id))
      throw new HexmeshError(
        'HEXMESH_ERR_CONFLICT',
        `instance ${spec.id} already exists; instances are immutable, start a new id`,
      );
    const inst = new LocalInstance(spec, {
      controlUrl: this.#o.controlUrl,
      client: this.#client,
      ...(this.#o.joinToken ? { joinToken: this.#o.joinToken } : {}),
      logDir: this.#o.logDir,
      ...(this.#o.watchdog ? { watchdog: this.#o.watchdog } : {}),
      ...(this.#o.cacheDir ? { cacheDir: this.#o.cacheDir } : {}),
      emit: (e) => this.#emit(e),
      ...(this.#o.deregisterSettleMs !== undefined ? { deregisterSettleMs: this.#o.deregisterSettleMs } : {}),
      ...(this.#o.sidecarReadyTimeoutMs !== undefined
        ? { sidecarReadyTimeoutMs: this.#o.sidecarReadyTimeoutMs }
        : {}),
    });
    this.#instances.set(spec.id, inst);
    await inst.start();
    return { id: spec.id, info: () => inst.info() };
  }

  async stopInstance(id: string, opts: StopOptions): Promise<void> {
    const inst = this.#instances.get(id);
    if (!inst) throw new HexmeshError('HEXMESH_ERR_NOT_FOUND', `no instance ${id}`);
    await inst.stop(opts);
    this.#instances.delete(id);
  }

  list(): InstanceInfo[] {
    return [...this.#instances.values()].map((i) => i.info());
  }

  on(listener: (e: RuntimeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async waitHealthy(ids: readonly string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.refreshHealth();
      const bad = ids
        .map((id) => this.#instances.get(id)?.info())
        .filter((i): i is InstanceInfo => i === undefined || i.health !== 'passing');
      const missing = ids.filter((id) => !this.#instances.has(id));
      if (missing.length)
        throw new HexmeshError('HEXMESH_ERR_NOT_FOUND', `no instance ${missing.join(', ')}`);
      if (bad.length === 0) return;
      if (Date.now() > deadline)
        throw new HexmeshError(
          'HEXMESH_ERR_TIMEOUT',
          `not healthy after ${timeoutMs} ms: ${bad.map((i) => `${i.id} (${i.state}, ${i.health}${i.healthOutput ? `: ${i.healthOutput}` : ''})`).join('; ')}`,
        );
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Read every running service's instances from the catalog and update their health. */
  async refreshHealth(): Promise<void> {
    if (this.#polling || this.#closed) return;
    this.#polling = true;
    try {
      const services = new Set(
        [...this.#instances.values()].map((i) => `${i.spec.namespace}/${i.spec.service}`),
      );
      const seen = new Map<string, CatalogInstance>();
      await Promise.all(
        [...services].map(async (s) => {
          try {
            const [ns, name] = s.split('/');
            const r = await this.#client.instances(ns, name, { signal: AbortSignal.timeout(2000) });
            for (const i of r.body as CatalogInstance[]) seen.set(i.id, i);
          } catch {}
        }),
      );
      for (const inst of this.#instances.values()) {
        const c = seen.get(inst.id);
        const health: InstanceHealth = c ? c.status : 'unknown';
        inst.setHealth(health, c?.output);
      }
    } finally {
      this.#polling = false;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#poll);
    await Promise.all([...this.#instances.values()].map((i) => i.stop({ drain: true })));
    this.#instances.clear();
    await this.#client.destroy();
  }

  #emit(e: RuntimeEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch {}
    }
  }
}
