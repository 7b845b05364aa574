import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/open-store.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreCompactedError, StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { Recorder, runStoreConformance, waitFor } from './conformance.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hexmesh-store-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const paths = new WeakMap<Store, string>();
runStoreConformance(
  'embedded (SQLite)',
  async () => {
    const dir = tempDir();
    const s = await SqliteStore.open(join(dir, 'hexmesh.db'), { leaseSweepMs: 50 });
    paths.set(s, dir);
    return s;
  },
  async (s) => {
    await s.close();
    rmSync(paths.get(s)!, { recursive: true, force: true });
  },
  { leaseTtlMs: 1000, expiryWaitMs: 10_000 },
);

describe('embedded store: durability, locking, compaction, clocks', () => {
  test('reopening the file sees the same keys, revisions and leases', async () => {
    const dir = tempDir();
    const path = join(dir, 'hexmesh.db');
    const s1 = await SqliteStore.open(path);
    await s1.put('/a', '1');
    const w = await s1.put('/b', '2');
    await s1.delete('/a');
    const lease = await s1.grantLease(60_000);
    await s1.put('/leased', 'x', { lease });
    const rev = await s1.revision();
    assert.ok(rev > w.revision);
    await s1.close();

    const s2 = await SqliteStore.open(path);
    try {
      assert.equal(await s2.revision(), rev);
      assert.equal(await s2.get('/a'), undefined);
      assert.deepEqual(await s2.get('/b'), {
        key: '/b',
        value: '2',
        createRevision: w.revision,
        modRevision: w.revision,
        version: 1,
        lease: 0,
      });
      assert.equal((await s2.get('/leased'))?.lease, lease);
      await s2.keepAlive(lease); // the lease survived the restart
      // History survived too: a watch from the first revision replays every write.
      const rec = new Recorder(s2, '', 1);
      const events = await rec.waitForEvents(4);
      rec.close();
      assert.deepEqual(
        events.map((e) => `${e.type} ${e.kv.key}`),
        ['put /a', 'put /b', 'delete /a', 'put /leased'],
      );
      const next = await s2.put('/c', '3');
      assert.equal(next.revision, rev + 1, 'revisions continue where they stopped');
    } finally {
      await s2.close();
    }
  });

  test('openStore(undefined | "embedded", dir) opens <dir>/hexmesh.db in WAL mode', async () => {
    for (const url of [undefined, 'embedded']) {
      const dir = tempDir();
      const s = await openStore(url, dir);
      try {
        assert.equal(s.kind, 'embedded');
        await s.put('/k', 'v');
      } finally {
        await s.close();
      }
      assert.ok(existsSync(join(dir, 'hexmesh.db')));
      const db = new Database(join(dir, 'hexmesh.db'), { readonly: true });
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.prepare('SELECT value FROM kv WHERE key = ?').pluck().get('/k'), 'v');
      db.close();
    }
  });

  test('a second open of the same file is refused with a clear error; the lock is freed on close', async () => {
    const path = join(tempDir(), 'hexmesh.db');
    const s1 = await SqliteStore.open(path);
    await assert.rejects(SqliteStore.open(path), (err: unknown) => {
      assert.ok(err instanceof StoreUnavailableError);
      assert.match(err.message, new RegExp(`in use by process ${process.pid}`));
      assert.match(err.message, /one process per data directory/);
      assert.match(err.message, /etcd/);
      return true;
    });
    assert.equal(readFileSync(`${path}.lock`, 'utf8').trim(), String(process.pid));
    await s1.close();
    assert.ok(!existsSync(`${path}.lock`));
    const s2 = await SqliteStore.open(path);
    await s2.close();
  });

  test('a lock file left by a dead process is taken over', async () => {
    const path = join(tempDir(), 'hexmesh.db');
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout.trim());
    assert.ok(deadPid > 0);
    writeFileSync(`${path}.lock`, `${deadPid}\n`);
    const s = await SqliteStore.open(path);
    assert.equal(readFileSync(`${path}.lock`, 'utf8').trim(), String(process.pid));
    await s.close();
  });

  test('compaction keeps the retention window; a watch from a compacted revision fails clearly', async () => {
    const s = await SqliteStore.open(join(tempDir(), 'hexmesh.db'), { retainRevisions: 20 });
    try {
      const first = await s.put('/k', '0');
      for (let i = 1; i < 60; i++) await s.put('/k', String(i));
      const rev = await s.revision();
      assert.ok(s.compactRevision > first.revision, `compacted past ${first.revision}: ${s.compactRevision}`);
      assert.ok(
        s.compactRevision >= rev - 22 && s.compactRevision <= rev - 20,
        `compactRevision ${s.compactRevision} vs ${rev}`,
      );
      // The current state is untouched by compaction.
      assert.deepEqual(await s.get('/k'), {
        key: '/k',
        value: '59',
        createRevision: first.revision,
        modRevision: rev,
        version: 60,
        lease: 0,
      });

      const old = new Recorder(s, '/', first.revision);
      await waitFor(() => old.errors.length > 0, 2000, 'the compacted watch to fail');
      assert.ok(old.errors[0] instanceof StoreCompactedError);
      assert.match(old.errors[0].message, new RegExp(`revision ${first.revision} was compacted`));
      assert.equal(old.events.length, 0);

      // From the oldest kept revision the replay is complete.
      const from = s.compactRevision + 1;
      const ok = new Recorder(s, '/', from);
      const events = await ok.waitForEvents(rev - from + 1);
      ok.close();
      assert.equal(events[0]!.kv.modRevision, from);
      assert.equal(events[events.length - 1]!.kv.value, '59');
    } finally {
      await s.close();
    }
  });

  test('lease expiry follows the injected clock, and a restart renews leases to a full TTL', async () => {
    let now = 1_000_000;
    const path = join(tempDir(), 'hexmesh.db');
    const s = await SqliteStore.open(path, { now: () => now, leaseSweepMs: 60_000 });
    const lease = await s.grantLease(10_000);
    await s.put('/leased', 'x', { lease });
    now += 9_999;
    assert.equal(s.expireLeases(), 0);
    await s.keepAlive(lease); // deadline now + 10 s
    now += 9_999;
    assert.equal(s.expireLeases(), 0);
    assert.equal((await s.get('/leased'))?.value, 'x');
    now += 2;
    const rec = new Recorder(s, '/', (await s.revision()) + 1);
    assert.equal(s.expireLeases(), 1);
    assert.equal(await s.get('/leased'), undefined);
    const [ev] = await rec.waitForEvents(1);
    rec.close();
    assert.equal(ev!.type, 'delete');
    assert.equal(ev!.prevKv?.lease, lease);

    // Down for far longer than the TTL: the lease gets a full TTL after restart, as etcd's leader change.
    const l2 = await s.grantLease(10_000);
    await s.put('/l2', 'y', { lease: l2 });
    await s.close();
    now += 3_600_000;
    const s2 = await SqliteStore.open(path, { now: () => now, leaseSweepMs: 60_000 });
    try {
      assert.equal(s2.expireLeases(), 0);
      assert.equal((await s2.get('/l2'))?.value, 'y');
      now += 10_001;
      assert.equal(s2.expireLeases(), 1);
      assert.equal(await s2.get('/l2'), undefined);
    } finally {
      await s2.close();
    }
  });

  test('a throwing onEvents callback ends that watch with onError and does not fail the write', async () => {
    const s = await SqliteStore.open(join(tempDir(), 'hexmesh.db'));
    try {
      const errors: Error[] = [];
      s.watch('/', {
        onEvents() {
          throw new Error('boom');
        },
        onError: (err) => errors.push(err),
      });
      await s.put('/a', '1');
      await waitFor(() => errors.length === 1, 2000, 'onError');
      assert.equal(errors[0]!.message, 'boom');
      await s.put('/b', '2');
    } finally {
      await s.close();
    }
  });
});
