/**
 * A real store with chosen calls slowed down, for races a fast embedded store never shows:
 * etcd starts a watch without `fromRevision` only when the server acknowledges it; a
 * network store's calls take time, or hang until their deadline.
 */
import type { DeleteOptions, PutOptions, Store, Watcher, WatchOptions } from '../../src/store/store.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SlowStore implements Store {
  readonly kind = 'slow';
  revisionDelayMs = 0;
  /** Run once after the next range() read, before its caller sees it. */
  afterRange: (() => Promise<unknown>) | undefined;
  /** Delay before a watch without fromRevision registers (etcd's acknowledgement). */
  watchAckMs = 0;
  grantDelayMs = 0;
  /** While set, keepAlive never answers. */
  hangKeepAlive = false;
  readonly #s: Store;
  readonly #timers = new Set<NodeJS.Timeout>();
  constructor(s: Store) {
    this.#s = s;
  }
  get(key: string) {
    return this.#s.get(key);
  }
  async range(prefix: string, opts?: { limit?: number }) {
    const r = await this.#s.range(prefix, opts);
    // Another writer gets in between this read and whatever the caller does with it.
    const hook = this.afterRange;
    this.afterRange = undefined;
    await hook?.();
    return r;
  }
  put(key: string, value: string, opts?: PutOptions) {
    return this.#s.put(key, value, opts);
  }
  delete(key: string, opts?: DeleteOptions) {
    return this.#s.delete(key, opts);
  }
  deletePrefix(prefix: string) {
    return this.#s.deletePrefix(prefix);
  }
  async revision() {
    if (this.revisionDelayMs) await sleep(this.revisionDelayMs);
    return this.#s.revision();
  }
  watch(prefix: string, opts: WatchOptions): Watcher {
    if (opts.fromRevision !== undefined || this.watchAckMs === 0) return this.#s.watch(prefix, opts);
    let inner: Watcher | undefined;
    let closed = false;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!closed) inner = this.#s.watch(prefix, opts);
    }, this.watchAckMs);
    this.#timers.add(t);
    return {
      close: () => {
        closed = true;
        inner?.close();
      },
    };
  }
  async grantLease(ttlMs: number) {
    if (this.grantDelayMs) await sleep(this.grantDelayMs);
    return this.#s.grantLease(ttlMs);
  }
  keepAlive(lease: number) {
    if (this.hangKeepAlive) return new Promise<void>(() => {});
    return this.#s.keepAlive(lease);
  }
  revokeLease(lease: number) {
    return this.#s.revokeLease(lease);
  }
  async close() {
    for (const t of this.#timers) clearTimeout(t);
  }
}
