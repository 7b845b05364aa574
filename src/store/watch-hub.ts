import type { WatchEvent, WatchOptions, Watcher } from './store.ts';

/** Largest batch handed to one onEvents call during replay (a revision is never split). */
const MAX_BATCH = 1000;

/**
 * In-process fan-out of committed events to watchers, for the embedded store. Writes
 * publish synchronously inside the same tick as their commit, so a watcher that reads its
 * replay from the log and registers in one tick misses nothing and sees nothing twice.
 * Delivery is deferred (setImmediate) so a callback never runs inside a write and a
 * throwing callback cannot fail the write.
 */
export class WatchHub {
  readonly #watchers = new Set<HubWatcher>();

  /** Register a watcher; `replay` holds past events (in revision order) to deliver first. */
  add(prefix: string, opts: WatchOptions, replay: readonly WatchEvent[]): Watcher {
    const w = new HubWatcher(this, prefix, opts);
    this.#watchers.add(w);
    if (replay.length > 0) w.push(replay);
    return w;
  }

  /** Fan out the events of one committed revision. */
  publish(events: readonly WatchEvent[]): void {
    if (this.#watchers.size === 0 || events.length === 0) return;
    for (const w of this.#watchers) {
      const mine = events.filter((e) => w.matches(e.kv.key));
      if (mine.length > 0) w.push(mine);
    }
  }

  /** Fail every watcher (e.g. the store closed) and forget them. */
  failAll(err: Error | undefined): void {
    for (const w of [...this.#watchers]) w.fail(err);
  }

  /** @internal */
  remove(w: HubWatcher): void {
    this.#watchers.delete(w);
  }
}

class HubWatcher implements Watcher {
  readonly #hub: WatchHub;
  readonly #prefix: string;
  readonly #opts: WatchOptions;
  #queue: WatchEvent[] = [];
  #scheduled: NodeJS.Immediate | undefined;
  #closed = false;

  constructor(hub: WatchHub, prefix: string, opts: WatchOptions) {
    this.#hub = hub;
    this.#prefix = prefix;
    this.#opts = opts;
  }

  matches(key: string): boolean {
    return key.startsWith(this.#prefix);
  }

  push(events: readonly WatchEvent[]): void {
    if (this.#closed) return;
    for (const e of events) this.#queue.push(e);
    this.#scheduled ??= setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = undefined;
    while (!this.#closed && this.#queue.length > 0) {
      const batch = takeBatch(this.#queue);
      this.#queue = this.#queue.slice(batch.length);
      try {
        this.#opts.onEvents(batch);
      } catch (err) {
        // A callback that throws has lost events it cannot get back: end the watch loudly.
        this.fail(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  fail(err: Error | undefined): void {
    if (this.#closed) return;
    this.close();
    if (err) this.#opts.onError?.(err);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    this.#hub.remove(this);
  }
}

/** Up to MAX_BATCH events from the head of `queue`, extended so a revision is whole. */
function takeBatch(queue: readonly WatchEvent[]): WatchEvent[] {
  if (queue.length <= MAX_BATCH) return queue.slice();
  let n = MAX_BATCH;
  const rev = queue[n - 1]!.kv.modRevision;
  while (n < queue.length && queue[n]!.kv.modRevision === rev) n++;
  return queue.slice(0, n);
}
