/**
 * The discovery server's in-memory mirror of the store: resources and catalog instances,
 * kept current by ONE store watch for the whole server (never one per proxy). Consumers are
 * told what changed (which services' instances, whether any resource) and the revision.
 */
import { KEYS, type Store, type Watcher, type WatchEvent } from '../../store/store.ts';
import type { Instance } from '../catalog/instance.ts';

/** A catalog instance as stored under `/hexmesh/instances/<ns>/<svc>/<id>` (docs/control-api.md): the catalog's record. */
export type CatalogInstance = Instance;

/** A resource as written by the REST API, with its JSON kept to build messages without re-serialising. */
export interface ResourceEntry {
  /** `Kind/namespace/name` */
  readonly id: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly doc: Record<string, unknown> & { spec?: Record<string, unknown> };
  readonly json: string;
}

export interface StateChange {
  readonly revision: number;
  /** Some resource was written or deleted (views depending on resources must be rebuilt). */
  readonly resources: boolean;
  /** `namespace/service` keys whose instances changed. */
  readonly instanceSets: ReadonlySet<string>;
}

const RESYNC_DELAY_MS = 1000;

export class MeshState {
  readonly resources = new Map<string, ResourceEntry>();
  /** `namespace/service` → id → instance. */
  readonly instances = new Map<string, Map<string, CatalogInstance>>();
  revision = 0;
  readonly #store: Store;
  readonly #onChange: (c: StateChange) => void;
  #watcher: Watcher | undefined;
  #closed = false;
  #resync: NodeJS.Timeout | undefined;
  readonly ready: Promise<void>;
  readonly #waiters: { rev: number; resolve: () => void }[] = [];

  constructor(store: Store, onChange: (c: StateChange) => void) {
    this.#store = store;
    this.#onChange = onChange;
    this.ready = this.#load();
    // A failed first load is retried by #load itself; keep the promise from being unhandled.
    this.ready.catch(() => {});
  }

  /** Read both prefixes, then watch everything under /hexmesh/ from the older of the two reads. */
  async #load(): Promise<void> {
    for (;;) {
      if (this.#closed) return;
      try {
        const res = await this.#store.range(KEYS.resources);
        const ins = await this.#store.range(KEYS.instances);
        this.resources.clear();
        this.instances.clear();
        for (const kv of res.kvs) this.#putResource(kv.key, kv.value);
        for (const kv of ins.kvs) this.#putInstance(kv.key, kv.value);
        this.revision = Math.max(res.revision, ins.revision);
        // Events between the two reads are replayed; puts and deletes are idempotent in order.
        this.#watch(Math.min(res.revision, ins.revision) + 1);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, RESYNC_DELAY_MS));
      }
    }
  }

  #watch(from: number): void {
    if (this.#closed) return;
    this.#watcher = this.#store.watch('/hexmesh/', {
      fromRevision: from,
      onEvents: (events) => this.#apply(events),
      onError: () => {
        // The watch broke (compaction, backend restart): reload everything and tell
        // consumers that all may have changed.
        this.#watcher?.close();
        this.#watcher = undefined;
        if (this.#closed || this.#resync) return;
        this.#resync = setTimeout(() => {
          this.#resync = undefined;
          const before = new Set(this.instances.keys());
          void this.#load().then(() => {
            for (const k of this.instances.keys()) before.add(k);
            this.#onChange({ revision: this.revision, resources: true, instanceSets: before });
          });
        }, RESYNC_DELAY_MS);
      },
    });
  }

  #apply(events: readonly WatchEvent[]): void {
    let resources = false;
    const sets = new Set<string>();
    let rev = this.revision;
    for (const e of events) {
      const key = e.kv.key;
      rev = Math.max(rev, e.kv.modRevision);
      if (key.startsWith(KEYS.resources)) {
        resources = true;
        if (e.type === 'put') this.#putResource(key, e.kv.value);
        else this.resources.delete(key.slice(KEYS.resources.length));
      } else if (key.startsWith(KEYS.instances)) {
        const set = e.type === 'put' ? this.#putInstance(key, e.kv.value) : this.#deleteInstance(key);
        if (set) sets.add(set);
      }
    }
    this.revision = rev;
    if (resources || sets.size) this.#onChange({ revision: rev, resources, instanceSets: sets });
    for (let i = this.#waiters.length - 1; i >= 0; i--)
      if (this.#waiters[i].rev <= rev) this.#waiters.splice(i, 1)[0].resolve();
  }

  /** Resolves once the mirror reflects `revision` (or after `timeoutMs`, whichever is first). */
  caughtUp(revision: number, timeoutMs = 2000): Promise<void> {
    if (this.revision >= revision) return Promise.resolve();
    return new Promise((resolve) => {
      const w = { rev: revision, resolve: () => (clearTimeout(t), resolve()) };
      const t = setTimeout(() => {
        const i = this.#waiters.indexOf(w);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve();
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  #putResource(key: string, value: string): void {
    const id = key.slice(KEYS.resources.length);
    const [kind, namespace, name] = id.split('/');
    let doc: unknown;
    try {
      doc = JSON.parse(value);
    } catch {
      doc = undefined;
    }
    // The REST API validated what it wrote; anything else written to the store directly is
    // passed on as is and the proxy's schema decides (it nacks what it cannot use).
    if (!kind || !namespace || !name || !doc || typeof doc !== 'object' || Array.isArray(doc)) {
      this.resources.delete(id);
      return;
    }
    const d = doc as ResourceEntry['doc'];
    this.resources.set(id, { id, kind, namespace, name, doc: d, json: JSON.stringify(d) });
  }

  #putInstance(key: string, value: string): string | undefined {
    const parts = key.slice(KEYS.instances.length).split('/');
    if (parts.length !== 3) return undefined;
    const [ns, svc, id] = parts;
    const set = `${ns}/${svc}`;
    let doc: CatalogInstance | undefined;
    try {
      doc = JSON.parse(value) as CatalogInstance;
    } catch {
      doc = undefined;
    }
    const ok =
      doc &&
      typeof doc === 'object' &&
      typeof doc.address === 'string' &&
      Number.isInteger(doc.meshPort ?? doc.port);
    let m = this.instances.get(set);
    if (!ok) {
      m?.delete(id);
      return set;
    }
    if (!m) this.instances.set(set, (m = new Map()));
    m.set(id, { ...doc!, id, service: svc, namespace: ns, labels: doc!.labels ?? {} });
    return set;
  }

  #deleteInstance(key: string): string | undefined {
    const parts = key.slice(KEYS.instances.length).split('/');
    if (parts.length !== 3) return undefined;
    const set = `${parts[0]}/${parts[1]}`;
    const m = this.instances.get(set);
    m?.delete(parts[2]);
    if (m && m.size === 0) this.instances.delete(set);
    return set;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#resync);
    this.#watcher?.close();
  }
}
