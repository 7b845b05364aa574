/**
 * Leader-only catalog upkeep: an instance whose TTL check lapsed becomes critical, and
 * an instance critical for longer than `deregisterCriticalAfter` is removed (Consul's
 * `deregister_critical_service_after`). Deletes are compare-and-set, so a status report
 * racing the sweep wins.
 */
import { StoreConflictError, type Store } from '../../store/store.ts';
import type { Catalog } from './catalog.ts';
import type { Instance } from './instance.ts';

export interface ReaperOptions {
  /** Remove instances critical for at least this long; 0 disables. */
  deregisterCriticalAfterMs: number;
  /** Sweep period (default: a quarter of the deregister time, between 100 ms and 10 s). */
  intervalMs?: number;
  now?: () => number;
}

export interface SweepResult {
  deregistered: string[];
  markedCritical: string[];
}

export class HealthReaper {
  readonly #catalog: Catalog;
  readonly #store: Store;
  readonly #after: number;
  readonly #interval: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;

  constructor(catalog: Catalog, store: Store, opts: ReaperOptions) {
    this.#catalog = catalog;
    this.#store = store;
    this.#after = opts.deregisterCriticalAfterMs;
    this.#interval =
      opts.intervalMs ?? Math.min(10_000, Math.max(100, Math.floor((this.#after || 40_000) / 4)));
    this.#now = opts.now ?? Date.now;
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (!this.#running)
        this.#running = this.sweep()
          .catch(() => {})
          .finally(() => (this.#running = undefined));
    }, this.#interval);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One pass over the catalog. */
  async sweep(): Promise<SweepResult> {
    const out: SweepResult = { deregistered: [], markedCritical: [] };
    const now = this.#now();
    const { instances, kvs } = await this.#catalog.list();
    for (let i = 0; i < instances.length; i++) {
      const inst = instances[i];
      const name = `${inst.namespace}/${inst.service}/${inst.id}`;
      const ttl = lapsedTtl(inst, now);
      if (ttl && inst.status !== 'critical') {
        // Compare-and-set on the revision the lapse was judged on: a TTL pass that lands
        // after the list wins (re-reading the key, as setStatus does, would overwrite it).
        const next: Instance = {
          ...inst,
          status: 'critical',
          output: `TTL check "${ttl}" expired`,
          statusChangedAt: new Date(now).toISOString(),
        };
        try {
          await this.#store.put(kvs[i].key, JSON.stringify(next), {
            lease: kvs[i].lease || undefined,
            prevModRevision: kvs[i].modRevision,
          });
          out.markedCritical.push(name);
        } catch {
          // Changed since the list (or the store is away): the next sweep judges again.
        }
        continue;
      }
      if (
        this.#after > 0 &&
        inst.status === 'critical' &&
        now - Date.parse(inst.statusChangedAt) >= this.#after
      ) {
        try {
          const r = await this.#store.delete(kvs[i].key, { prevModRevision: kvs[i].modRevision });
          if (r.deleted) out.deregistered.push(name);
        } catch (e) {
          if (!(e instanceof StoreConflictError)) throw e;
        }
      }
    }
    return out;
  }
}

/** The name of a TTL check whose last pass is older than its ttl, if any. */
function lapsedTtl(inst: Instance, now: number): string | undefined {
  const last = Date.parse(inst.checkedAt ?? inst.registeredAt);
  for (const c of inst.checks)
    if (c.type === 'ttl' && c.ttl !== undefined && now - last > c.ttl) return c.name;
  return undefined;
}
