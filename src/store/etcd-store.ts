import { randomBytes } from 'node:crypto';
import {
  Etcd3,
  EtcdLeaseInvalidError,
  type IKeyValue,
  type IWatchResponse,
  type Watcher as EtcdWatcher,
} from 'etcd3';
import {
  StoreCompactedError,
  StoreConflictError,
  StoreError,
  StoreLeaseNotFoundError,
  StoreUnavailableError,
  type DeleteOptions,
  type DeleteResult,
  type KeyValue,
  type PutOptions,
  type RangeResult,
  type Store,
  type WatchEvent,
  type WatchOptions,
  type Watcher,
  type WriteResult,
} from './store.ts';

export interface EtcdStoreOptions {
  /** Deadline of one unary call (per try; the client retries on another member). Default 5 s. */
  callTimeoutMs?: number;
  /** How long connect() waits for the cluster to answer. Default 10 s. */
  connectTimeoutMs?: number;
}

const ZERO = Buffer.from([0]);

/**
 * The Store over a real etcd v3 cluster, through the maintained `etcd3` client. Conditional
 * writes are etcd transactions (`If(mod_revision(key) == N)`, or `create_revision == 0`
 * for create-only), watches are etcd watches with `prev_kv` that resume from the next
 * undelivered revision after a member dies, and leases are etcd leases with hexmesh-chosen
 * ids below 2^48 so they stay exact as JS numbers.
 *
 * Failure behaviour: a call to a dead member is retried on another one by the client
 * (three tries); when no member answers, the call fails with StoreUnavailableError naming
 * the endpoints. A put retried after its response was lost may be applied twice (a CAS put
 * then reports a conflict against its own write), as with any etcd client.
 */
export class EtcdStore implements Store {
  readonly kind = 'etcd';
  readonly endpoints: readonly string[];
  readonly #client: Etcd3;
  readonly #callTimeoutMs: number;
  readonly #watchers = new Set<EtcdStoreWatcher>();
  #closed = false;

  private constructor(endpoints: readonly string[], opts: EtcdStoreOptions) {
    this.endpoints = endpoints;
    const callTimeout = opts.callTimeoutMs ?? 5000;
    this.#callTimeoutMs = callTimeout;
    this.#client = new Etcd3({
      hosts: [...endpoints],
      dialTimeout: opts.connectTimeoutMs ?? 10_000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeout }),
      // A member whose host died sends nothing, not even a reset: without HTTP/2 pings a watch
      // on it waits forever. 10 s keeps within etcd's default --grpc-keepalive-min-time (5 s).
      grpcOptions: {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.keepalive_permit_without_calls': 1,
      },
    });
  }

  /** Connect to the cluster and check that it answers (StoreUnavailableError if not). */
  static async connect(endpoints: readonly string[], opts: EtcdStoreOptions = {}): Promise<EtcdStore> {
    if (endpoints.length === 0)
      throw new StoreError('HEXMESH_ERR_STORE_URL', 'etcd store needs at least one endpoint');
    const store = new EtcdStore(endpoints, opts);
    try {
      await store.revision();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.#call('get', () => this.#client.kv.range({ key: Buffer.from(key) }));
    const kv = res.kvs[0];
    return kv && toKv(kv);
  }

  async range(prefix: string, opts: { limit?: number } = {}): Promise<RangeResult> {
    const [key, rangeEnd] = prefixRange(prefix);
    const limit = opts.limit !== undefined && opts.limit > 0 ? String(opts.limit) : '0';
    const res = await this.#call('range', () => this.#client.kv.range({ key, range_end: rangeEnd, limit }));
    return { kvs: res.kvs.map(toKv), revision: Number(res.header.revision) };
  }

  async revision(): Promise<number> {
    const res = await this.#call('revision', () => this.#client.kv.range({ key: ZERO, count_only: true }));
    return Number(res.header.revision);
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<WriteResult> {
    if (key === '') throw new StoreError('HEXMESH_ERR_STORE_KEY', 'key must not be empty');
    const k = Buffer.from(key);
    const request_put = { key: k, value: Buffer.from(value), lease: String(opts.lease ?? 0) };
    const lease = opts.lease ?? 0;
    if (opts.prevModRevision === undefined) {
      const res = await this.#call('put', () => this.#client.kv.put(request_put), lease);
      return { revision: Number(res.header.revision) };
    }
    const res = await this.#call(
      'put',
      () =>
        this.#client.kv.txn({
          compare: [modRevisionIs(k, opts.prevModRevision!)],
          success: [{ request_put }],
          failure: [{ request_range: { key: k } }],
        }),
      lease,
    );
    if (!res.succeeded) throw conflict(key, opts.prevModRevision, res.responses[0]?.response_range.kvs[0]);
    return { revision: Number(res.header.revision) };
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<DeleteResult> {
    const k = Buffer.from(key);
    if (opts.prevModRevision === undefined) {
      const res = await this.#call('delete', () => this.#client.kv.deleteRange({ key: k }));
      return { revision: Number(res.header.revision), deleted: Number(res.deleted) };
    }
    const res = await this.#call('delete', () =>
      this.#client.kv.txn({
        compare: [modRevisionIs(k, opts.prevModRevision!)],
        success: [{ request_delete_range: { key: k } }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (!res.succeeded) throw conflict(key, opts.prevModRevision, res.responses[0]?.response_range.kvs[0]);
    const deleted = Number(res.responses[0]?.response_delete_range.deleted ?? 0);
    return { revision: Number(res.header.revision), deleted };
  }

  async deletePrefix(prefix: string): Promise<DeleteResult> {
    const [key, rangeEnd] = prefixRange(prefix);
    const res = await this.#call('deletePrefix', () =>
      this.#client.kv.deleteRange({ key, range_end: rangeEnd }),
    );
    return { revision: Number(res.header.revision), deleted: Number(res.deleted) };
  }

  watch(prefix: string, opts: WatchOptions): Watcher {
    this.#check();
    const w = new EtcdStoreWatcher(this, this.#client, prefix, opts, () => this.#watchers.delete(w));
    this.#watchers.add(w);
    return w;
  }

  async grantLease(ttlMs: number): Promise<number> {
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) {
      throw new StoreError(
        'HEXMESH_ERR_STORE_LEASE_TTL',
        `lease TTL must be a positive number of ms, got ${ttlMs}`,
      );
    }
    // etcd TTLs are whole seconds (and at least its minimum, ~1.5 × election timeout).
    const ttl = String(Math.max(1, Math.ceil(ttlMs / 1000)));
    for (let attempt = 0; ; attempt++) {
      // etcd's own ids use all 64 bits; ours stay below 2^48 so they are exact JS numbers.
      const id = randomBytes(6).readUIntBE(0, 6) || 1;
      try {
        await this.#call('grantLease', () =>
          this.#client.leaseClient.leaseGrant({ TTL: ttl, ID: String(id) }),
        );
        return id;
      } catch (err) {
        if (attempt < 3 && /lease already exists/.test((err as Error).message)) continue;
        throw err;
      }
    }
  }

  /**
   * Renew `lease` once. A member that died fails the call fast (UNAVAILABLE), and the client
   * picks members at random until that member's circuit breaker opens (three failures): a
   * renewal that waited for the caller's next tick each time lost the lease once in a while
   * (three ticks in a row on the dead member; seen across hosts under CPU load, the instance
   * left the catalog until it registered again). So a failed renewal is tried again after a
   * short pause (25 ms doubling to 400 ms: the dead member's breaker opens, an election ends),
   * when there is another member to try. No try starts after one call timeout has passed, but
   * the last one may itself take up to a call timeout (a silent member answers nothing): the
   * worst case is about twice the call timeout.
   */
  async keepAlive(lease: number): Promise<void> {
    const deadline = Date.now() + this.#callTimeoutMs;
    for (let delay = 25; ; delay = Math.min(delay * 2, 400)) {
      try {
        return await this.#keepAliveOnce(lease);
      } catch (err) {
        if (!(err instanceof StoreUnavailableError) || this.endpoints.length === 1) throw err;
        if (Date.now() + delay > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async #keepAliveOnce(lease: number): Promise<void> {
    const res = await this.#call(
      'keepAlive',
      async () => {
        // One short-lived stream per keep-alive, so it gets a unary call's deadline: on a silent
        // member it would hang, and with it every later renewal of the caller (the lease lapses).
        // The failed call marks the member, so the next one goes to another.
        const stream = await this.#client.leaseClient.leaseKeepAlive({
          deadline: Date.now() + this.#callTimeoutMs,
        });
        try {
          return await new Promise<{ TTL: string }>((resolve, reject) => {
            stream.on('data', resolve);
            stream.on('error', reject);
            stream.on('end', () => reject(new Error('keepalive stream ended')));
            stream.write({ ID: String(lease) });
          });
        } finally {
          stream.end();
        }
      },
      lease,
    );
    // etcd answers a keepalive of an unknown or expired lease with TTL 0.
    if (Number(res.TTL) <= 0) throw new StoreLeaseNotFoundError(lease);
  }

  async revokeLease(lease: number): Promise<void> {
    await this.#call('revokeLease', () => this.#client.leaseClient.leaseRevoke({ ID: String(lease) }), lease);
  }

  /** Whether `revision` is older than etcd's compacted history (false when unsure). */
  async isCompacted(revision: number): Promise<boolean> {
    try {
      await this.#client.kv.range({ key: ZERO, revision: String(revision), count_only: true });
      return false;
    } catch (err) {
      return /compacted/.test((err as Error).message);
    }
  }

  /** Compact etcd's history up to `revision` (watches from older revisions then fail). */
  async compact(revision: number): Promise<void> {
    await this.#call('compact', () =>
      this.#client.kv.compact({ revision: String(revision), physical: true }),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#watchers]) w.close();
    this.#client.close();
  }

  #check(): void {
    if (this.#closed) throw new StoreUnavailableError(`etcd store ${this.endpoints.join(',')} is closed`);
  }

  /** Run one etcd call and map its failure to a store error naming the endpoints. */
  async #call<T>(op: string, fn: () => Promise<T>, lease = 0): Promise<T> {
    this.#check();
    try {
      return await fn();
    } catch (err) {
      throw this.mapError(op, err, lease);
    }
  }

  /** @internal */
  mapError(op: string, err: unknown, lease = 0): Error {
    if (err instanceof StoreError) return err;
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof EtcdLeaseInvalidError || /requested lease not found/.test(message)) {
      return new StoreLeaseNotFoundError(lease);
    }
    return new StoreUnavailableError(`etcd ${this.endpoints.join(',')}: ${op} failed: ${message}`, {
      cause: err,
    });
  }
}

/**
 * One etcd watch. Tracks the next revision it still owes the caller, so that when the
 * stream breaks (a member died) it resumes from there on another member, dropping any
 * event it already delivered: the etcd3 client alone would resume from the last header
 * revision, which can skip events of a replay cut short.
 */
class EtcdStoreWatcher implements Watcher {
  readonly #store: EtcdStore;
  readonly #opts: WatchOptions;
  readonly #onClose: () => void;
  readonly #watcher: EtcdWatcher;
  /** Next revision to deliver; undefined until known (live watch before etcd acknowledged it). */
  #next: number | undefined;
  #closed = false;

  constructor(store: EtcdStore, client: Etcd3, prefix: string, opts: WatchOptions, onClose: () => void) {
    this.#store = store;
    this.#opts = opts;
    this.#onClose = onClose;
    this.#next = opts.fromRevision;
    const builder = client.watch().prefix(prefix).withPreviousKV();
    if (opts.fromRevision !== undefined) builder.startRevision(String(opts.fromRevision));
    // watcher() attaches at once; create() would only add a promise we do not need.
    this.#watcher = builder.watcher();
    this.#watcher.on('connected', (res: IWatchResponse) => {
      this.#next ??= Number(res.header.revision) + 1;
    });
    this.#watcher.on('data', (res: IWatchResponse) => this.#onData(res));
    this.#watcher.on('disconnected', () => {
      // Resume where the caller is, not where the client last saw a header.
      if (this.#next !== undefined) this.#watcher.request.start_revision = String(this.#next);
    });
    this.#watcher.on('error', (err: Error) => void this.#onWatchError(err));
  }

  #onData(res: IWatchResponse): void {
    if (this.#closed || res.events.length === 0) return; // progress notifications carry no events
    const next = this.#next ?? 0;
    const events: WatchEvent[] = [];
    for (const ev of res.events) {
      const kv = toKv(ev.kv);
      if (kv.modRevision < next) continue; // already delivered before a reconnect
      const type = ev.type === 'Delete' ? 'delete' : 'put';
      events.push(ev.prev_kv ? { type, kv, prevKv: toKv(ev.prev_kv) } : { type, kv });
    }
    if (events.length === 0) return;
    this.#next = events[events.length - 1]!.kv.modRevision + 1;
    try {
      this.#opts.onEvents(events);
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async #onWatchError(err: Error): Promise<void> {
    if (this.#closed) return;
    // etcd cancels a watch whose start revision was compacted without saying so in a way
    // the client surfaces; ask for that revision to tell compaction from other failures.
    const from = this.#next;
    if (from !== undefined && /Watcher canceled/.test(err.message) && (await this.#store.isCompacted(from))) {
      this.#fail(new StoreCompactedError(from));
      return;
    }
    this.#fail(this.#store.mapError('watch', err));
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.close();
    this.#opts.onError?.(err);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    this.#watcher.removeAllListeners('data');
    // cancel() waits for etcd's acknowledgement; nothing here needs to wait for it.
    this.#watcher.cancel().catch(() => {});
  }
}

/** etcd's prefix range: [prefix, prefix+1) on bytes; '' means every key. */
function prefixRange(prefix: string): [Buffer, Buffer] {
  if (prefix === '') return [ZERO, ZERO];
  const start = Buffer.from(prefix);
  const end = Buffer.from(start);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return [start, end.subarray(0, i + 1)];
    }
  }
  return [start, ZERO]; // all 0xff: no upper bound
}

/** The compare of a conditional write: modRevision == N, or "does not exist" for N = 0. */
function modRevisionIs(key: Buffer, rev: number) {
  return rev === 0
    ? { key, target: 'Create' as const, result: 'Equal' as const, create_revision: '0' }
    : { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: String(rev) };
}

function conflict(key: string, expected: number, current: IKeyValue | undefined): StoreConflictError {
  return new StoreConflictError(key, expected, current ? Number(current.mod_revision) : 0);
}

function toKv(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: Number(kv.lease),
  };
}
