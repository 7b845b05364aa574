import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { prefixEnd } from './key-range.ts';
import { LockFile } from './lock-file.ts';
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
import { WatchHub } from './watch-hub.ts';

export interface SqliteStoreOptions {
  /** Revisions of history kept for watches (older log rows are compacted). Default 10,000. */
  retainRevisions?: number;
  /** How often expired leases are swept. Default 250 ms. */
  leaseSweepMs?: number;
  /**
   * `full` (default) fsyncs every commit: a write that returned survives a power cut.
   * `normal` survives a process crash but may lose the last commits on power loss (WAL).
   */
  synchronous?: 'full' | 'normal';
  /** Wall clock for lease expiry (injectable for tests). Default Date.now. */
  now?: () => number;
}

interface KvRow {
  key: string;
  value: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: number;
}

interface LogRow {
  revision: number;
  key: string;
  value: string;
  create_revision: number;
  prev_revision: number;
  version: number;
  lease: number;
  deleted: number;
  p_value: string | null;
  p_create_revision: number | null;
  p_revision: number | null;
  p_version: number | null;
  p_lease: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', 1), ('revision', 1), ('compact_revision', 0);
-- Append-only history, as kine's: one row per changed key per revision (a revision that
-- deletes a prefix or revokes a lease writes several rows with the same revision).
CREATE TABLE IF NOT EXISTS log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  revision INTEGER NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  create_revision INTEGER NOT NULL,
  prev_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL,
  deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_revision ON log (revision);
CREATE INDEX IF NOT EXISTS log_key_revision ON log (key, revision);
-- Current state, maintained in the same transaction as the log so reads are one lookup.
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS leases (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ttl_ms INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
`;

const KV_COLS = 'key, value, create_revision, mod_revision, version, lease';
const LOG_SELECT = `SELECT l.revision, l.key, l.value, l.create_revision, l.prev_revision, l.version, l.lease, l.deleted,
  p.value AS p_value, p.create_revision AS p_create_revision, p.revision AS p_revision, p.version AS p_version, p.lease AS p_lease
  FROM log l LEFT JOIN log p ON p.key = l.key AND p.revision = l.prev_revision AND p.deleted = 0`;

/**
 * The embedded store: SQLite (better-sqlite3) on one file, in the spirit of k3s's kine.
 * Every write is one SQLite transaction that bumps the store revision, appends to `log`
 * and updates `kv`; committed events fan out in-process to watchers, and a watch from a
 * past revision replays `log` first. One process per file (enforced by a lock file).
 *
 * better-sqlite3 is synchronous; the methods stay async to match etcd, and every write
 * is short (one key or one prefix), so the event loop is held for microseconds to a
 * millisecond or so (plus the fsync with `synchronous: 'full'`).
 */
export class SqliteStore implements Store {
  readonly kind = 'embedded';
  readonly path: string;
  readonly #db: Db;
  readonly #lock: LockFile;
  readonly #hub = new WatchHub();
  readonly #now: () => number;
  readonly #retain: number;
  readonly #compactStep: number;
  readonly #sweep: NodeJS.Timeout;
  readonly #s: ReturnType<typeof prepare>;
  #revision: number;
  #compactRevision: number;
  #closed = false;

  private constructor(path: string, db: Db, lock: LockFile, opts: SqliteStoreOptions) {
    this.path = path;
    this.#db = db;
    this.#lock = lock;
    this.#now = opts.now ?? Date.now;
    this.#retain = opts.retainRevisions ?? 10_000;
    if (!Number.isInteger(this.#retain) || this.#retain < 1) {
      throw new StoreError(
        'HEXMESH_ERR_STORE_OPTIONS',
        `retainRevisions must be a positive integer, got ${this.#retain}`,
      );
    }
    // Compact in steps so the log is not trimmed by one row on every write.
    this.#compactStep = Math.max(1, Math.floor(this.#retain / 10));
    this.#s = prepare(db);
    this.#revision = this.#s.getMeta.get('revision') as number;
    this.#compactRevision = this.#s.getMeta.get('compact_revision') as number;
    // As etcd after a leader change: a restart renews every lease to its full TTL, so the
    // store being down does not expire every sidecar's registration at once.
    this.#s.renewAllLeases.run(this.#now());
    const sweepMs = opts.leaseSweepMs ?? 250;
    this.#sweep = setInterval(() => this.#sweepLeases(), sweepMs);
    this.#sweep.unref();
  }

  /**
   * Open (creating if needed) the database at `path`, e.g. `<dataDir>/hexmesh.db`, and take
   * `<path>.lock`. Throws StoreUnavailableError if another process holds the lock or the
   * file cannot be opened.
   */
  static async open(path: string, opts: SqliteStoreOptions = {}): Promise<SqliteStore> {
    // The store holds secrets (token hashes, the sealed CA key): its directory is the owner's
    // (0700 when created here) and the database is created 0600 before SQLite opens it, so the
    // -wal and -shm files, which SQLite creates with the database's mode, are 0600 too.
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
    const lock = LockFile.acquire(`${path}.lock`, `store ${path}`);
    let db: Db | undefined;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('foreign_keys = OFF');
      db.exec(SCHEMA);
      return new SqliteStore(path, db, lock, opts);
    } catch (err) {
      db?.close();
      lock.release();
      if (err instanceof StoreError) throw err;
      throw new StoreUnavailableError(`cannot open store ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Oldest revision a watch can still start from is this + 1. */
  get compactRevision(): number {
    return this.#compactRevision;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.#check();
    const row = this.#s.get.get(key) as KvRow | undefined;
    return row && toKv(row);
  }

  async range(prefix: string, opts: { limit?: number } = {}): Promise<RangeResult> {
    this.#check();
    const limit = opts.limit !== undefined && opts.limit > 0 ? opts.limit : -1;
    const end = prefixEnd(prefix);
    const rows = (
      end === undefined ? this.#s.rangeFrom.all(prefix, limit) : this.#s.range.all(prefix, end, limit)
    ) as KvRow[];
    return { kvs: rows.map(toKv), revision: this.#revision };
  }

  async revision(): Promise<number> {
    this.#check();
    return this.#revision;
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<WriteResult> {
    this.#check();
    if (key === '') throw new StoreError('HEXMESH_ERR_STORE_KEY', 'key must not be empty');
    const events = this.#db.transaction((): WatchEvent[] => {
      const cur = this.#s.get.get(key) as KvRow | undefined;
      if (opts.prevModRevision !== undefined && (cur?.mod_revision ?? 0) !== opts.prevModRevision) {
        throw new StoreConflictError(key, opts.prevModRevision, cur?.mod_revision ?? 0);
      }
      const lease = opts.lease ?? 0;
      if (lease !== 0 && !this.#leaseLive(lease)) throw new StoreLeaseNotFoundError(lease);
      const rev = this.#bump();
      const next: KvRow = {
        key,
        value,
        create_revision: cur ? cur.create_revision : rev,
        mod_revision: rev,
        version: cur ? cur.version + 1 : 1,
        lease,
      };
      this.#s.upsert.run(next);
      this.#s.append.run(
        rev,
        key,
        value,
        next.create_revision,
        cur?.mod_revision ?? 0,
        next.version,
        lease,
        0,
      );
      const ev: WatchEvent = cur
        ? { type: 'put', kv: toKv(next), prevKv: toKv(cur) }
        : { type: 'put', kv: toKv(next) };
      return [ev];
    })();
    return this.#committed(events);
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<DeleteResult> {
    this.#check();
    const events = this.#db.transaction((): WatchEvent[] => {
      const cur = this.#s.get.get(key) as KvRow | undefined;
      if (opts.prevModRevision !== undefined && (cur?.mod_revision ?? 0) !== opts.prevModRevision) {
        throw new StoreConflictError(key, opts.prevModRevision, cur?.mod_revision ?? 0);
      }
      return cur ? this.#deleteRows([cur]) : [];
    })();
    return { ...this.#committed(events), deleted: events.length };
  }

  async deletePrefix(prefix: string): Promise<DeleteResult> {
    this.#check();
    const events = this.#db.transaction((): WatchEvent[] => {
      const end = prefixEnd(prefix);
      const rows = (
        end === undefined ? this.#s.rangeFrom.all(prefix, -1) : this.#s.range.all(prefix, end, -1)
      ) as KvRow[];
      return this.#deleteRows(rows);
    })();
    return { ...this.#committed(events), deleted: events.length };
  }

  watch(prefix: string, opts: WatchOptions): Watcher {
    this.#check();
    const from = opts.fromRevision ?? this.#revision + 1;
    if (from <= this.#compactRevision) {
      const err = new StoreCompactedError(from, this.#compactRevision);
      const w = this.#hub.add(prefix, { onEvents() {} }, []);
      setImmediate(() => {
        w.close();
        opts.onError?.(err);
      });
      return w;
    }
    let replay: WatchEvent[] = [];
    if (from <= this.#revision) {
      const end = prefixEnd(prefix);
      const rows = (
        end === undefined ? this.#s.replayFrom.all(from, prefix) : this.#s.replay.all(from, prefix, end)
      ) as LogRow[];
      replay = rows.map(toEvent);
    }
    // Registered in the same tick as the replay read: no commit can fall in between.
    return this.#hub.add(prefix, opts, replay);
  }

  async grantLease(ttlMs: number): Promise<number> {
    this.#check();
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) {
      throw new StoreError(
        'HEXMESH_ERR_STORE_LEASE_TTL',
        `lease TTL must be a positive number of ms, got ${ttlMs}`,
      );
    }
    const ttl = Math.ceil(ttlMs);
    return Number(this.#s.grant.run(ttl, this.#now() + ttl).lastInsertRowid);
  }

  async keepAlive(lease: number): Promise<void> {
    this.#check();
    const row = this.#s.getLease.get(lease) as { ttl_ms: number; expires_at: number } | undefined;
    const now = this.#now();
    if (!row) throw new StoreLeaseNotFoundError(lease);
    if (row.expires_at <= now) {
      // Expired but not swept yet: expire it now so the caller sees a consistent world.
      this.#revoke(lease);
      throw new StoreLeaseNotFoundError(lease);
    }
    this.#s.extendLease.run(now + row.ttl_ms, lease);
  }

  async revokeLease(lease: number): Promise<void> {
    this.#check();
    if (!this.#revoke(lease)) throw new StoreLeaseNotFoundError(lease);
  }

  /**
   * Expire every lease whose deadline passed (deleting its keys as normal delete events).
   * Runs on a timer; public so tests with an injected clock can drive it.
   */
  expireLeases(): number {
    if (this.#closed) return 0;
    const ids = this.#s.expiredLeases.pluck().all(this.#now()) as number[];
    for (const id of ids) this.#revoke(id);
    return ids.length;
  }

  /** Remove log rows up to and including `revision` (default: keep the retention window). */
  compact(revision = this.#revision - this.#retain): void {
    this.#check();
    const upTo = Math.min(revision, this.#revision);
    if (upTo <= this.#compactRevision) return;
    this.#db.transaction(() => {
      this.#s.compactLog.run(upTo);
      this.#s.setMeta.run(upTo, 'compact_revision');
    })();
    this.#compactRevision = upTo;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    this.#hub.failAll(undefined);
    try {
      this.#db.close();
    } finally {
      this.#lock.release();
    }
  }

  #check(): void {
    if (this.#closed) throw new StoreUnavailableError(`store ${this.path} is closed`);
  }

  #bump(): number {
    const rev = this.#revision + 1;
    this.#s.setMeta.run(rev, 'revision');
    // Assigned only after the transaction commits (see #committed); a rollback keeps the old value.
    this.#pending = rev;
    return rev;
  }

  #pending = 0;

  /** After a commit: adopt the new revision, fan out, compact when the log outgrew retention. */
  #committed(events: WatchEvent[]): WriteResult {
    if (events.length > 0) {
      this.#revision = this.#pending;
      this.#hub.publish(events);
      if (this.#revision - this.#compactRevision > this.#retain + this.#compactStep) this.compact();
    }
    return { revision: this.#revision };
  }

  /** Delete `rows` in one new revision (inside a transaction); returns the delete events. */
  #deleteRows(rows: readonly KvRow[]): WatchEvent[] {
    if (rows.length === 0) return [];
    const rev = this.#bump();
    const events: WatchEvent[] = [];
    for (const row of rows) {
      this.#s.del.run(row.key);
      this.#s.append.run(rev, row.key, '', row.create_revision, row.mod_revision, 0, 0, 1);
      events.push({ type: 'delete', kv: deletedKv(row.key, rev), prevKv: toKv(row) });
    }
    return events;
  }

  /** Revoke a lease and delete its keys in one revision; false when it did not exist. */
  #revoke(lease: number): boolean {
    const result = this.#db.transaction((): { found: boolean; events: WatchEvent[] } => {
      const found = this.#s.deleteLease.run(lease).changes > 0;
      if (!found) return { found, events: [] };
      return { found, events: this.#deleteRows(this.#s.byLease.all(lease) as KvRow[]) };
    })();
    this.#committed(result.events);
    return result.found;
  }

  #leaseLive(lease: number): boolean {
    const row = this.#s.getLease.get(lease) as { expires_at: number } | undefined;
    return row !== undefined && row.expires_at > this.#now();
  }

  #sweepLeases(): void {
    try {
      this.expireLeases();
    } catch (err) {
      // The database went away under us (disk gone, file removed): watchers must know.
      this.#hub.failAll(
        new StoreUnavailableError(`store ${this.path}: lease sweep failed: ${(err as Error).message}`, {
          cause: err,
        }),
      );
    }
  }
}

function prepare(db: Db) {
  const st = <R extends unknown[] = unknown[]>(sql: string): Statement<R> => db.prepare<R>(sql);
  return {
    getMeta: st<[string]>('SELECT value FROM meta WHERE name = ?').pluck(),
    setMeta: st<[number, string]>('UPDATE meta SET value = ? WHERE name = ?'),
    get: st<[string]>(`SELECT ${KV_COLS} FROM kv WHERE key = ?`),
    range: st<[string, string, number]>(
      `SELECT ${KV_COLS} FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?`,
    ),
    rangeFrom: st<[string, number]>(`SELECT ${KV_COLS} FROM kv WHERE key >= ? ORDER BY key LIMIT ?`),
    byLease: st<[number]>(`SELECT ${KV_COLS} FROM kv WHERE lease = ? AND lease != 0 ORDER BY key`),
    upsert: st<[KvRow]>(
      `INSERT INTO kv (${KV_COLS}) VALUES (@key, @value, @create_revision, @mod_revision, @version, @lease)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, create_revision = excluded.create_revision,
       mod_revision = excluded.mod_revision, version = excluded.version, lease = excluded.lease`,
    ),
    del: st<[string]>('DELETE FROM kv WHERE key = ?'),
    append: st<[number, string, string, number, number, number, number, number]>(
      `INSERT INTO log (revision, key, value, create_revision, prev_revision, version, lease, deleted)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    replay: st<[number, string, string]>(
      `${LOG_SELECT} WHERE l.revision >= ? AND l.key >= ? AND l.key < ? ORDER BY l.revision, l.id`,
    ),
    replayFrom: st<[number, string]>(
      `${LOG_SELECT} WHERE l.revision >= ? AND l.key >= ? ORDER BY l.revision, l.id`,
    ),
    compactLog: st<[number]>('DELETE FROM log WHERE revision <= ?'),
    grant: st<[number, number]>('INSERT INTO leases (ttl_ms, expires_at) VALUES (?, ?)'),
    getLease: st<[number]>('SELECT ttl_ms, expires_at FROM leases WHERE id = ?'),
    extendLease: st<[number, number]>('UPDATE leases SET expires_at = ? WHERE id = ?'),
    deleteLease: st<[number]>('DELETE FROM leases WHERE id = ?'),
    expiredLeases: st<[number]>('SELECT id FROM leases WHERE expires_at <= ? ORDER BY id'),
    renewAllLeases: st<[number]>('UPDATE leases SET expires_at = max(expires_at, ? + ttl_ms)'),
  };
}

function toKv(row: KvRow): KeyValue {
  return {
    key: row.key,
    value: row.value,
    createRevision: row.create_revision,
    modRevision: row.mod_revision,
    version: row.version,
    lease: row.lease,
  };
}

/** As etcd: a delete event's kv carries only the key and the delete's revision. */
function deletedKv(key: string, revision: number): KeyValue {
  return { key, value: '', createRevision: 0, modRevision: revision, version: 0, lease: 0 };
}

function toEvent(r: LogRow): WatchEvent {
  const prevKv: KeyValue | undefined =
    r.p_revision === null
      ? undefined
      : {
          key: r.key,
          value: r.p_value!,
          createRevision: r.p_create_revision!,
          modRevision: r.p_revision,
          version: r.p_version!,
          lease: r.p_lease!,
        };
  const kv: KeyValue = r.deleted
    ? deletedKv(r.key, r.revision)
    : {
        key: r.key,
        value: r.value,
        createRevision: r.create_revision,
        modRevision: r.revision,
        version: r.version,
        lease: r.lease,
      };
  const type = r.deleted ? 'delete' : 'put';
  return prevKv ? { type, kv, prevKv } : { type, kv };
}
