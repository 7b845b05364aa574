/**
 * The control plane's embedded metrics collector: every `intervalMs` it scrapes
 * `/metrics` on the admin address of every proxy the control plane knows (catalog
 * instances with an `adminAddress`, and connected proxies under `/hexmesh/proxies/`), and
 * feeds the request metrics into a WindowStore that the stats views read.
 *
 * Only the leader replica scrapes (the store may be shared by several replicas: one
 * scraper per mesh, not one per replica). Followers keep no history; a replica that
 * loses leadership drops its own, and the new leader starts afresh.
 *
 * A proxy whose last scrape failed (refused, timed out, not 200, unparseable) is
 * **stale**: the views count it apart and never as healthy.
 */
import { KEYS, type Store } from '../../store/store.ts';
import type { Instance } from '../catalog/instance.ts';
import { REVISION_LABEL } from '../../rollout/rollout-status.ts';
import { instanceDeployment } from '../kubernetes/translate.ts';
import { parsePromText, type Sample } from './prom-text.ts';
import { BUCKETS, REQUESTS, WindowStore, type TargetCounters } from './window-store.ts';
import { ErrorHistory, SYNTHETIC } from './error-history.ts';

export interface CollectorOptions {
  store: Store;
  /** Only scrape while this says true (the leader). */
  isLeader: () => boolean;
  /** Scrape period (default 10 s). */
  intervalMs?: number;
  /** Per-scrape time limit (default: the interval, at least 1 s, at most 10 s). */
  scrapeTimeoutMs?: number;
  /** Window slot width (default: the interval, at least 100 ms). */
  resolutionMs?: number;
  /** History kept (default 1 h). */
  retentionMs?: number;
  /** Cap on stored series (default 5000). */
  maxSeries?: number;
  /** Concurrent scrapes (default 32). */
  concurrency?: number;
  now?: () => number;
  onError?(err: unknown): void;
}

/** One instance the control plane knows, and how its last scrape went. */
export interface TargetStatus {
  id: string;
  service: string;
  namespace: string;
  /** `host:port` of its admin listener; absent for instances without a sidecar (not scraped). */
  adminAddress?: string;
  /** Its `version` label, if any (`hexmesh stat --by version`). */
  version?: string;
  /** Its rollout revision label (`hexmesh.io/revision`), if any. */
  revision?: string;
  /** Its Kubernetes Deployment (`hexmesh.io/deployment`, or its `hexmesh.io/pod`'s), if any. */
  deployment?: string;
  /** Where it was found: a catalog instance, or a connected proxy not in the catalog. */
  source: 'catalog' | 'proxy';
  /** Last scrape failed, or none succeeded yet. Never true for unscraped instances. */
  stale: boolean;
  /** Epoch ms of the last successful scrape. */
  lastScrape?: number;
  /** Why the last scrape failed. */
  error?: string;
}

interface Target {
  status: TargetStatus;
  counters: TargetCounters;
  /** The same proxy's counters as the error history reads them. */
  errorCounters: TargetCounters;
}

const KEPT = (name: string) => name === REQUESTS || name === BUCKETS || name === SYNTHETIC;

export class MetricsCollector {
  readonly window: WindowStore;
  /** Failed requests by status and synthetic responses by code (`/v1/stats/errors`). */
  readonly errors: ErrorHistory;
  readonly intervalMs: number;
  readonly #opts: CollectorOptions;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  /** By adminAddress (or `id:<id>` for unscraped instances). */
  #targets = new Map<string, Target>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #collecting = false;
  #closed = false;
  #rounds = 0;

  constructor(opts: CollectorOptions) {
    this.#opts = opts;
    this.intervalMs = opts.intervalMs ?? 10_000;
    if (!(this.intervalMs >= 10)) throw new RangeError(`intervalMs must be ≥ 10, got ${this.intervalMs}`);
    this.#now = opts.now ?? Date.now;
    this.#timeoutMs = opts.scrapeTimeoutMs ?? Math.min(10_000, Math.max(1000, this.intervalMs));
    this.window = new WindowStore({
      resolutionMs: opts.resolutionMs ?? Math.max(100, this.intervalMs),
      retentionMs: opts.retentionMs,
      maxSeries: opts.maxSeries,
      now: this.#now,
    });
    const w = this.window;
    this.errors = new ErrorHistory((ms) => w.slotOf(ms), Math.ceil(w.retentionMs / w.resolutionMs) + 1);
  }

  /** True while this replica collects (it leads). */
  get collecting(): boolean {
    return this.#collecting;
  }

  /** Completed scrape rounds (tests wait on it). */
  get rounds(): number {
    return this.#rounds;
  }

  /** Every known instance with its scrape status, sorted by namespace, service, id. */
  targets(): TargetStatus[] {
    return [...this.#targets.values()]
      .map((t) => ({ ...t.status }))
      .sort(
        (a, b) =>
          a.namespace.localeCompare(b.namespace) ||
          a.service.localeCompare(b.service) ||
          a.id.localeCompare(b.id),
      );
  }

  /** Start the periodic loop (the first round runs at once). Idempotent. */
  start(): void {
    if (this.#timer || this.#closed) return;
    const tick = () => {
      this.#running = this.collectOnce()
        .catch((e) => this.#opts.onError?.(e))
        .finally(() => {
          this.#running = undefined;
          if (!this.#closed) {
            this.#timer = setTimeout(tick, this.intervalMs);
            this.#timer.unref();
          }
        });
    };
    this.#timer = setTimeout(tick, 0);
    this.#timer.unref();
  }

  /**
   * One round: refresh the target list from the store and scrape each target once. A
   * follower does nothing (and forgets what it had when it just lost leadership).
   */
  async collectOnce(): Promise<void> {
    if (!this.#opts.isLeader()) {
      if (this.#collecting) {
        this.#collecting = false;
        this.#targets = new Map();
        this.window.clear();
        this.errors.clear();
      }
      return;
    }
    this.#collecting = true;
    await this.#refreshTargets();
    const list = [...this.#targets.values()].filter((t) => t.status.adminAddress !== undefined);
    const concurrency = this.#opts.concurrency ?? 32;
    let next = 0;
    const worker = async () => {
      while (next < list.length && !this.#closed) await this.#scrape(list[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));
    this.#rounds++;
  }

  async #refreshTargets(): Promise<void> {
    const [instances, proxies] = await Promise.all([
      this.#opts.store.range(KEYS.instances),
      this.#opts.store.range(KEYS.proxies),
    ]);
    const next = new Map<string, Target>();
    const add = (p: Partial<Instance>, source: TargetStatus['source']) => {
      if (typeof p.service !== 'string' || typeof p.id !== 'string') return;
      const admin = typeof p.adminAddress === 'string' ? p.adminAddress : undefined;
      const key = admin ?? `id:${p.namespace}/${p.service}/${p.id}`;
      if (next.has(key)) return;
      const prev = this.#targets.get(key);
      const version = p.labels?.version;
      const revision = p.labels?.[REVISION_LABEL];
      const deployment = instanceDeployment(p.labels);
      const status: TargetStatus = {
        id: p.id,
        service: p.service,
        namespace: typeof p.namespace === 'string' ? p.namespace : 'default',
        ...(admin !== undefined && { adminAddress: admin }),
        ...(typeof version === 'string' && { version }),
        ...(typeof revision === 'string' && { revision }),
        ...(typeof deployment === 'string' && { deployment }),
        source,
        stale: prev ? prev.status.stale : admin !== undefined,
        ...(prev?.status.lastScrape !== undefined && { lastScrape: prev.status.lastScrape }),
        ...(prev?.status.error !== undefined && { error: prev.status.error }),
      };
      if (admin === undefined) status.stale = false;
      // A different instance at the same address (a restart) starts new counters.
      const same = prev && prev.status.id === status.id && prev.status.service === status.service;
      next.set(key, {
        status,
        counters: same ? prev.counters : WindowStore.newTarget(),
        errorCounters: same ? prev.errorCounters : WindowStore.newTarget(),
      });
    };
    for (const kv of instances.kvs) {
      try {
        add(JSON.parse(kv.value) as Instance, 'catalog');
      } catch {}
    }
    for (const kv of proxies.kvs) {
      try {
        add(JSON.parse(kv.value) as Partial<Instance>, 'proxy');
      } catch {}
    }
    this.#targets = next;
  }

  async #scrape(t: Target): Promise<void> {
    const s = t.status;
    try {
      const res = await fetch(`http://${s.adminAddress}/metrics`, {
        signal: AbortSignal.timeout(this.#timeoutMs),
        headers: { accept: 'text/plain' },
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`/metrics answered ${res.status}`);
      }
      const text = await res.text();
      const samples: Sample[] = [];
      parsePromText(text, (x) => samples.push(x), KEPT);
      const at = this.#now();
      const origin = {
        instance: s.id,
        version: s.version ?? '',
        revision: s.revision ?? '',
        deployment: s.deployment ?? '',
      };
      this.window.ingest(t.counters, s.namespace, samples, at, origin);
      this.errors.ingest(t.errorCounters, s.namespace, samples, at, origin, s.service);
      s.stale = false;
      s.lastScrape = this.#now();
      delete s.error;
    } catch (e) {
      s.stale = true;
      const err = e as Error;
      s.error =
        err.name === 'TimeoutError'
          ? `scrape timed out after ${this.#timeoutMs} ms`
          : `${err.message}${err.cause ? `: ${(err.cause as Error).message}` : ''}`;
    }
  }

  /** Stop the loop and wait for a round in progress. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
