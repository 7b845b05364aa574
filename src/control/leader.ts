/**
 * Leader election over the store (as etcd's election recipe): the leader holds
 * `/hexmesh/leader/<role>`, attached to a lease it keeps alive. Others poll (and watch)
 * the key and campaign when it disappears — at the latest one lease TTL after the
 * leader's process died. Work that must happen once runs only while `isLeader`.
 */
import {
  KEYS,
  StoreCompactedError,
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
  /** Clock (tests). */
  now?: () => number;
}

export class LeaderElection {
  readonly #store: Store;
  readonly #key: string;
  readonly #id: string;
  readonly #ttl: number;
  readonly #onChange: (leader: boolean) => void;
  readonly #now: () => number;
  #lease = 0;
  #leader = false;
  /** When the last successful grant/renewal was *sent*: the store keeps the lease at most a TTL from then. */
  #renewedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #rewatchTimer: NodeJS.Timeout | undefined;
  #watcher: Watcher | undefined;
  /** Last revision the watch delivered, so a broken watch resumes without a gap. */
  #seen = 0;
  #inflight: Promise<void> | undefined;
  /** A tick was asked for while one ran (e.g. the key was deleted): run another after it. */
  #again = false;
  #closed = false;

  constructor(store: Store, opts: LeaderOptions) {
    this.#store = store;
    this.#key = KEYS.leader(opts.role ?? 'controller');
    this.#id = opts.id;
    this.#ttl = opts.ttlMs ?? 10_000;
    this.#onChange = opts.onChange ?? (() => {});
    this.#now = opts.now ?? Date.now;
  }

  /**
   * True while this replica leads. False as soon as the lease may have lapsed in the store
   * (no renewal for a whole TTL), even while a renewal is still pending: by then another
   * replica may lead.
   */
  get isLeader(): boolean {
    return this.#leader && this.#now() - this.#renewedAt < this.#ttl;
  }

  /** Start campaigning; returns after the first attempt (so `isLeader` is meaningful). */
  async start(): Promise<void> {
    // Watch from a known revision. A watch without one starts only when the backend
    // acknowledges it (etcd): a resignation in between would wait for the next poll.
    try {
      this.#seen = await this.#store.revision();
      if (!this.#closed) this.#watch();
    } catch {
      this.#scheduleRewatch();
    }
    await this.#tick();
  }

  /** Who leads now (the stored id), or undefined. */
  async leader(): Promise<string | undefined> {
    const kv = await this.#store.get(this.#key);
    return kv ? (JSON.parse(kv.value) as { id: string }).id : undefined;
  }

  #watch(): void {
    this.#watcher = this.#store.watch(this.#key, {
      fromRevision: this.#seen + 1,
      onEvents: (events) => {
        let deleted = false;
        for (const e of events) {
          if (e.kv.modRevision > this.#seen) this.#seen = e.kv.modRevision;
          // A prefix watch: `/hexmesh/leader/<role>x` is another election.
          if (e.type === 'delete' && e.kv.key === this.#key) deleted = true;
        }
        if (!deleted || this.#closed) return;
        // Our key is gone (lease lapsed in the store, or deleted by hand): we no longer
        // lead, whatever the last renewal said. Campaign at once.
        if (this.#leader) this.#stepDown();
        this.#requestTick();
      },
      onError: (err) => {
        this.#watcher?.close();
        this.#watcher = undefined;
        // History gone: resume from the current revision (the tick re-reads the key).
        if (err instanceof StoreCompactedError) this.#seen = 0;
        this.#scheduleRewatch();
      },
    });
  }

  /** Re-establish a broken watch (backend restart, compaction) after a short pause. */
  #scheduleRewatch(): void {
    if (this.#closed) return;
    clearTimeout(this.#rewatchTimer);
    this.#rewatchTimer = setTimeout(() => {
      void (async () => {
        try {
          if (this.#seen === 0) this.#seen = await this.#store.revision();
          if (this.#closed) return;
          this.#watch();
          this.#requestTick();
        } catch {
          this.#scheduleRewatch();
        }
      })();
    }, 500);
    this.#rewatchTimer.unref();
  }

  #requestTick(): void {
    if (this.#inflight) this.#again = true;
    else void this.#tick();
  }

  #tick(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#inflight) return this.#inflight;
    clearTimeout(this.#timer);
    this.#inflight = (async () => {
      try {
        do {
          this.#again = false;
          if (this.#leader) await this.#keepAlive();
          else await this.#campaign();
        } while (this.#again && !this.#closed);
      } finally {
        this.#inflight = undefined;
        if (!this.#closed) {
          this.#timer = setTimeout(() => void this.#tick(), Math.max(50, this.#ttl / 3));
          this.#timer.unref();
        }
      }
    })();
    return this.#inflight;
  }

  async #campaign(): Promise<void> {
    try {
      if (await this.#store.get(this.#key)) return;
      const granted = this.#now();
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
      if (this.#closed) {
        // Closed while campaigning: do not hold the key for a TTL nobody will use.
        await this.#store.revokeLease(lease).catch(() => {});
        return;
      }
      this.#lease = lease;
      this.#renewedAt = granted;
      this.#set(true);
    } catch {
      // Store unavailable: stay a follower and try again on the next tick.
    }
  }

  async #keepAlive(): Promise<void> {
    const sent = this.#now();
    let deadline: NodeJS.Timeout | undefined;
    try {
      // Never wait past the lease's end in the store: a renewal that answers later
      // cannot have kept us leader in the meantime.
      const left = Math.max(0, this.#renewedAt + this.#ttl - sent);
      await Promise.race([
        this.#store.keepAlive(this.#lease),
        new Promise<never>((_, reject) => {
          deadline = setTimeout(() => reject(new Error('lease renewal timed out')), left);
        }),
      ]);
      if (this.#leader) this.#renewedAt = sent;
    } catch (e) {
      // Lost the lease, or could not renew it before it lapses: someone else may lead now.
      if (e instanceof StoreLeaseNotFoundError || this.#now() - this.#renewedAt >= this.#ttl)
        this.#stepDown();
    } finally {
      clearTimeout(deadline);
    }
  }

  #stepDown(): void {
    const lease = this.#lease;
    this.#lease = 0;
    this.#set(false);
    // If the store still has it (a slow renewal), free the key for the others now.
    if (lease) void this.#store.revokeLease(lease).catch(() => {});
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
    clearTimeout(this.#rewatchTimer);
    this.#watcher?.close();
    // A campaign in flight may still win; wait for it so its lease is not left behind.
    await this.#inflight?.catch(() => {});
    if (opts.resign === false) {
      this.#lease = 0;
      this.#set(false);
    } else if (this.#leader) {
      const lease = this.#lease;
      this.#lease = 0;
      this.#set(false);
      await this.#store.revokeLease(lease).catch(() => {});
    }
  }
}
