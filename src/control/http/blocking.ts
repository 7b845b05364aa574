/**
 * Blocking queries (Consul-shaped): a read with `?index=N&wait=60s` waits until a
 * change relevant to it has a revision above N, or the wait (capped at 10 min, plus
 * jitter of wait/16 so clients spread out) ends. A return does not promise a change.
 *
 * One store watch per server feeds every waiter (not one watch per request), and a
 * bounded history of recent changes answers "did something change since N?" for a
 * client that read just before the watch saw the change.
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { parseDuration } from '../../config/duration.ts';
import type { Store, WatchEvent, Watcher } from '../../store/store.ts';

export const MAX_WAIT_MS = 10 * 60_000;
export const DEFAULT_WAIT_MS = 5 * 60_000;

export interface BlockingParams {
  /** The index the client last saw, or undefined for a plain read. */
  index?: number;
  /** How long to wait, jitter included. */
  waitMs: number;
}

/** Parse `index` and `wait`; a bad value is a 400 naming it. */
export function parseBlocking(query: URLSearchParams, random = Math.random): BlockingParams {
  const rawIndex = query.get('index');
  if (rawIndex === null) return { waitMs: 0 };
  const index = Number(rawIndex);
  if (!Number.isSafeInteger(index) || index < 0)
    throw new HexmeshError(
      'HEXMESH_ERR_BAD_REQUEST',
      `index must be a non-negative integer (got ${JSON.stringify(rawIndex)})`,
    );
  const rawWait = query.get('wait');
  let wait = DEFAULT_WAIT_MS;
  if (rawWait !== null) {
    const ms = parseDuration(/^\d+$/.test(rawWait) ? `${rawWait}s` : rawWait);
    if (ms === undefined)
      throw new HexmeshError(
        'HEXMESH_ERR_BAD_REQUEST',
        `wait must be a duration like 30s or 5m (got ${JSON.stringify(rawWait)})`,
      );
    wait = Math.min(ms, MAX_WAIT_MS);
  }
  return { index, waitMs: wait + Math.floor(random() * (wait / 16)) };
}

/** A counting limit on long-lived requests (blocking queries and watches). */
export class Slots {
  #used = 0;
  constructor(readonly limit: number) {}
  get used(): number {
    return this.#used;
  }
  /** Take a slot or throw 503 with a message that says which limit was hit. */
  acquire(what: string): () => void {
    if (this.#used >= this.limit)
      throw new HexmeshError(
        'HEXMESH_ERR_OVERLOADED',
        `too many concurrent blocking queries and watches on this server (limit ${this.limit}); ` +
          `${what} refused, retry later or against another replica`,
      );
    this.#used++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.#used--;
      }
    };
  }
}

interface Waiter {
  prefix: string;
  exact: boolean;
  index: number;
  done(): void;
}

interface Change {
  key: string;
  revision: number;
}

/** Tracks changes under `root` so blocking reads can wait for them. */
export class ChangeTracker {
  readonly #store: Store;
  readonly #root: string;
  readonly #historySize: number;
  readonly #waiters = new Set<Waiter>();
  /** Ring of recent changes; complete for every revision > #coveredFrom. */
  readonly #history: Change[] = [];
  #coveredFrom = Number.MAX_SAFE_INTEGER;
  #seen = 0;
  #watcher: Watcher | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(store: Store, opts: { root?: string; historySize?: number } = {}) {
    this.#store = store;
    this.#root = opts.root ?? '/hexmesh/';
    this.#historySize = opts.historySize ?? 10_000;
  }

  /** The highest revision the tracker has seen. */
  get revision(): number {
    return this.#seen;
  }

  get waiting(): number {
    return this.#waiters.size;
  }

  async start(): Promise<void> {
    const rev = await this.#store.revision();
    this.#seen = rev;
    this.#coveredFrom = rev;
    this.#watch(rev + 1);
  }

  #watch(from: number): void {
    if (this.#closed) return;
    this.#watcher = this.#store.watch(this.#root, {
      fromRevision: from,
      onEvents: (events) => this.#onEvents(events),
      onError: () => {
        // We may have missed changes: release every waiter (a return does not promise a
        // change), forget the history, and watch again from what we last saw.
        this.#watcher?.close();
        this.#watcher = undefined;
        this.#history.length = 0;
        this.#coveredFrom = Number.MAX_SAFE_INTEGER;
        for (const w of this.#waiters) w.done();
        this.#waiters.clear();
        this.#scheduleRetry();
      },
    });
  }

  /**
   * Watch again after a pause. The store may still be down (or closed under us): a failed
   * attempt schedules the next one instead of throwing from a promise handler, and the
   * timer is unref'd so a tracker left behind never keeps the process alive.
   */
  #scheduleRetry(): void {
    if (this.#closed) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#closed) return;
      this.#store.revision().then(
        (rev) => {
          if (this.#closed) return;
          this.#coveredFrom = rev;
          this.#seen = Math.max(this.#seen, rev);
          this.#tryWatch(rev + 1);
        },
        () => this.#tryWatch(this.#seen + 1),
      );
    }, 500);
    this.#retry.unref();
  }

  #tryWatch(from: number): void {
    try {
      this.#watch(from);
    } catch {
      this.#scheduleRetry();
    }
  }

  #onEvents(events: readonly WatchEvent[]): void {
    for (const e of events) {
      const revision = e.kv.modRevision;
      if (revision > this.#seen) this.#seen = revision;
      this.#history.push({ key: e.kv.key, revision });
    }
    if (this.#history.length > this.#historySize) {
      const dropped = this.#history.splice(0, this.#history.length - this.#historySize);
      this.#coveredFrom = dropped[dropped.length - 1].revision;
    }
    if (this.#waiters.size === 0) return;
    for (const w of this.#waiters) {
      for (const e of events)
        if (e.kv.modRevision > w.index && matches(w, e.kv.key)) {
          w.done();
          break;
        }
    }
  }

  /** True if the history proves a change under `prefix` after `index`, or cannot rule one out. */
  #changedSince(prefix: string, exact: boolean, index: number): boolean {
    if (index < this.#coveredFrom) return true;
    const probe = { prefix, exact };
    for (let i = this.#history.length - 1; i >= 0; i--) {
      const c = this.#history[i];
      if (c.revision <= index) break;
      if (matches(probe, c.key)) return true;
    }
    return false;
  }

  /**
   * Resolve when a key under `prefix` (or exactly `prefix`, with `exact`) changes at a
   * revision above `index`, after `waitMs`, or when `signal` aborts.
   */
  wait(prefix: string, index: number, waitMs: number, signal: AbortSignal, exact = false): Promise<void> {
    if (this.#closed || signal.aborted || this.#changedSince(prefix, exact, index)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: Waiter = {
        prefix,
        exact,
        index,
        done: () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', waiter.done);
          this.#waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, waitMs);
      signal.addEventListener('abort', waiter.done, { once: true });
      this.#waiters.add(waiter);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#watcher?.close();
    for (const w of [...this.#waiters]) w.done();
  }
}

function matches(w: { prefix: string; exact: boolean }, key: string): boolean {
  return w.exact ? key === w.prefix : key.startsWith(w.prefix);
}
