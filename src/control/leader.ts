/**
 * Leader election over the store (as etcd's election recipe): the leader holds
 * `/hexmesh/leader/<role>`, attached to a lease it keeps alive. Others poll (and watch)
 * the key and campaign when it disappears — at the latest one lease TTL after the
 * leader's process died. Work that must happen once runs only while `isLeader`.
 */
import {
  KEYS,
  StoreConflictError,
  StoreLeaseNotFoundError,
  type Store,
  type Watcher,
} from '../store/store.ts';

export interface LeaderOptions {
  /** Election name; the key is `/hexmesh/leader/<role>`. */
  role?: string;
  /** This replica's identity, stored in the key. */
  id: string;
  /** Lease TTL: how long a dead leader blocks the others (default 10 s). */
  ttlMs?: number;
  /** Called on every change of leadership of this replica. */
  onChange?(leader: boolean): void;
}

export class LeaderElection {
  readonly #store: Store;
  readonly #key: string;
  readonly #id: string;
  readonly #ttl: number;
  readonly #onChange: (leader: boolean) => void;
  #lease = 0;
  #leader = false;
  #lastKeepAlive = 0;
  #timer: NodeJS.Timeout | undefined;
  #watcher: Watcher | undefined;
  #busy = false;
  #closed = false;

  constructor(store: Store, opts: LeaderOptions) {
    this.#store = store;
    this.#key = KEYS.leader(opts.role ?? 'controller');
    this.#id = opts.id;
    this.#ttl = opts.ttlMs ?? 10_000;
    this.#onChange = opts.onChange ?? (() => {});
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** Start campaigning; returns after the first attempt (so `isLeader` is meaningful). */
  async start(): Promise<void> {
    this.#watcher = this.#store.watch(this.#key, {
      onEvents: (events) => {
        if (!this.#leader && events.some((e) => e.type === 'delete')) void this.#tick();
      },
      onError: () => {},
    });
    await this.#tick();
  }

  /** Who leads now (the stored id), or undefined. */
  async leader(): Promise<string | undefined> {
    const kv = await this.#store.get(this.#key);
    return kv ? (JSON.parse(kv.value) as { id: string }).id : undefined;
  }

  async #tick(): Promise<void> {
    if (this.#closed || this.#busy) return;
    this.#busy = true;
    clearTimeout(this.#timer);
    try {
      if (this.#leader) await this.#keepAlive();
      else await this.#campaign();
    } finally {
      this.#busy = false;
      if (!this.#closed) {
        this.#timer = setTimeout(() => void this.#tick(), Math.max(50, this.#ttl / 3));
        this.#timer.unref();
      }
    }
  }

  async #campaign(): Promise<void> {
    try {
      if (await this.#store.get(this.#key)) return;
      const lease = await this.#store.grantLease(this.#ttl);
      try {
        await this.#store.put(this.#key, JSON.stringify({ id: this.#id, since: new Date().toISOString() }), {
          lease,
          prevModRevision: 0,
        });
      } catch (e) {
        await this.#store.revokeLease(lease).catch(() => {});
        if (e instanceof StoreConflictError) return;
        throw e;
      }
      this.#lease = lease;
      this.#lastKeepAlive = Date.now();
      this.#set(true);
    } catch {
      // Store unavailable: stay a follower and try again on the next tick.
    }
  }

  async #keepAlive(): Promise<void> {
    try {
      await this.#store.keepAlive(this.#lease);
      this.#lastKeepAlive = Date.now();
    } catch (e) {
      // Lost the lease, or could not renew it for a whole TTL: someone else may lead now.
      if (e instanceof StoreLeaseNotFoundError || Date.now() - this.#lastKeepAlive >= this.#ttl) {
        this.#lease = 0;
        this.#set(false);
      }
    }
  }

  #set(leader: boolean): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    this.#onChange(leader);
  }

  /**
   * Stop campaigning; a leader resigns (revokes its lease) so another replica takes over
   * now. With `resign: false` the lease is left to expire, as when the process dies.
   */
  async close(opts: { resign?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    if (opts.resign === false) this.#set(false);
    else if (this.#leader) {
      this.#set(false);
      await this.#store.revokeLease(this.#lease).catch(() => {});
    }
  }
}
