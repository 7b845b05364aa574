/**
 * The embedded store under SIGKILL: a real `hexmesh control` (WAL, synchronous FULL) is killed
 * while it deletes a prefix of 20,000 keys in one store write, at several points into the
 * write. After each kill the store, reopened, holds every key or none, and the history agrees
 * (one revision with every delete event, or no revision at all). Multi-document applies are
 * per document by contract (test/cli/apply-interrupted.test.ts); this is the store-level
 * promise they rest on.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Running } from '../cli/control-support.ts';
import { freePort } from '../../src/runtime/ports.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS, type WatchEvent } from '../../src/store/store.ts';

const N = 20_000;
const PREFIX = `${KEYS.kv}bulk/`;

let dir: string | undefined;
const running: Running[] = [];
after(async () => {
  for (const r of running) await r.stop('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Open the data dir's store (taking over the dead process's lock), run `fn`, close it. */
async function withStore<T>(data: string, fn: (s: SqliteStore) => Promise<T>): Promise<T> {
  const s = await SqliteStore.open(join(data, 'hexmesh.db'), { synchronous: 'normal' });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Every delete event of revisions after `from` under the prefix, grouped by revision. */
async function deletesAfter(s: SqliteStore, from: number): Promise<Map<number, number>> {
  const by = new Map<number, number>();
  const head = await s.revision();
  if (head <= from) return by;
  await new Promise<void>((resolve, reject) => {
    // The whole key space, so the watch reaches `head` whatever the control plane wrote there.
    const w = s.watch('/hexmesh/', {
      fromRevision: from + 1,
      onEvents(events: readonly WatchEvent[]) {
        for (const e of events)
          if (e.type === 'delete' && e.kv.key.startsWith(PREFIX))
            by.set(e.kv.modRevision, (by.get(e.kv.modRevision) ?? 0) + 1);
        if (events.at(-1)!.kv.modRevision >= head) {
          w.close();
          resolve();
        }
      },
      onError: reject,
    });
  });
  return by;
}

test(
  'a prefix delete of 20,000 keys killed with SIGKILL mid-write is all or nothing after restart',
  { timeout: 300_000 },
  async (t) => {
    dir = await mkdtemp(join(tmpdir(), 'hexmesh-store-crash-'));
    const data = join(dir, 'data');
    const port = await freePort();
    const seen = { all: 0, none: 0 };
    // Kill at several points: before the request is read, during the write, after it.
    for (const delayMs of [0, 30, 60, 70, 80, 90, 100, 110, 130, 250]) {
      const before = await withStore(data, async (s) => {
        if ((await s.range(PREFIX, { limit: 1 })).kvs.length === 0)
          for (let i = 0; i < N; i++) await s.put(`${PREFIX}${String(i).padStart(5, '0')}`, `v${i}`);
        return s.revision();
      });
      const cp = new Running([
        'control',
        '--listen',
        `127.0.0.1:${port}`,
        '--data-dir',
        data,
        '--auth',
        'off',
      ]);
      running.push(cp);
      await cp.waitFor(/listening on/, 60_000);
      const req = http.request({ host: '127.0.0.1', port, method: 'DELETE', path: '/v1/kv/bulk/?recurse=1' });
      req.on('error', () => {});
      req.end();
      await new Promise((r) => setTimeout(r, delayMs));
      await cp.stop('SIGKILL');

      await withStore(data, async (s) => {
        const left = (await s.range(PREFIX)).kvs.length;
        const deletes = await deletesAfter(s, before);
        const where = `killed ${delayMs} ms after the request: ${left} keys left, delete events by revision ${JSON.stringify([...deletes])}`;
        t.diagnostic(where);
        assert.ok(left === 0 || left === N, where);
        if (left === N) {
          seen.all++;
          assert.equal(deletes.size, 0, where);
        } else {
          seen.none++;
          assert.deepEqual([...deletes.values()], [N], `one revision with every delete: ${where}`);
        }
      });
    }
    // Both outcomes happened, so the kills did land on both sides of the commit.
    assert.ok(seen.all > 0 && seen.none > 0, JSON.stringify(seen));
  },
);
