import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { startCp, call, service, type TestCp } from './helpers.ts';

let t: TestCp;
before(async () => {
  t = await startCp({ watchHeartbeatMs: 200 });
});
after(() => t.close());

test('KV get/put/delete, recurse and keys', async () => {
  assert.equal((await call(t.url, 'PUT', '/v1/kv/app/a', 'one')).body.ok, true);
  await call(t.url, 'PUT', '/v1/kv/app/b', 'two');
  await call(t.url, 'PUT', '/v1/kv/apple', 'x');
  const a = await call(t.url, 'GET', '/v1/kv/app/a');
  assert.equal(a.body.key, 'app/a');
  assert.equal(a.body.value, 'one');
  assert.equal(a.body.createRevision, a.body.modRevision);
  assert.deepEqual(
    (await call(t.url, 'GET', '/v1/kv/app/?recurse=1')).body.map((e: any) => e.value),
    ['one', 'two'],
  );
  assert.deepEqual((await call(t.url, 'GET', '/v1/kv/app?keys=1')).body, ['app/a', 'app/b', 'apple']);
  assert.equal((await call(t.url, 'GET', '/v1/kv/app')).status, 404, 'exact key, not a prefix');
  const d = await call(t.url, 'DELETE', '/v1/kv/app/?recurse=1');
  assert.deepEqual(d.body, { ok: true, deleted: 2 });
  assert.equal((await call(t.url, 'GET', '/v1/kv/apple')).body.value, 'x');
});

test('KV check-and-set: cas=0 creates only; cas=N updates only at N; failed CAS changes nothing', async () => {
  const c = await call(t.url, 'PUT', '/v1/kv/cas/k?cas=0', 'v1');
  assert.equal(c.body.ok, true);
  const again = await call(t.url, 'PUT', '/v1/kv/cas/k?cas=0', 'v2');
  assert.deepEqual(again.body, { ok: false, modRevision: c.body.modRevision });
  const u = await call(t.url, 'PUT', `/v1/kv/cas/k?cas=${c.body.modRevision}`, 'v3');
  assert.equal(u.body.ok, true);
  const stale = await call(t.url, 'PUT', `/v1/kv/cas/k?cas=${c.body.modRevision}`, 'v4');
  assert.equal(stale.body.ok, false);
  assert.equal((await call(t.url, 'GET', '/v1/kv/cas/k')).body.value, 'v3');
  assert.equal((await call(t.url, 'DELETE', `/v1/kv/cas/k?cas=${c.body.modRevision}`)).body.ok, false);
  assert.equal((await call(t.url, 'DELETE', `/v1/kv/cas/k?cas=${u.body.modRevision}`)).body.ok, true);
  assert.equal((await call(t.url, 'PUT', '/v1/kv/cas/k?cas=abc', 'v')).status, 400);
});

test('KV CAS matches a model over random command sequences (property)', async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          op: fc.constantFrom('put', 'putCas', 'putCreate', 'del', 'delCas'),
          key: fc.constantFrom('a', 'b'),
          stale: fc.boolean(),
        }),
        { maxLength: 12 },
      ),
      async (cmds) => {
        const ns = `prop${run++}/`;
        const model = new Map<string, { value: string; rev: number }>();
        let n = 0;
        for (const c of cmds) {
          const key = ns + c.key;
          const cur = model.get(key);
          const value = `v${n++}`;
          const rev = cur ? (c.stale ? cur.rev - 1 : cur.rev) : c.stale ? 1 : 0;
          if (c.op === 'put' || c.op === 'putCas' || c.op === 'putCreate') {
            const q = c.op === 'put' ? '' : c.op === 'putCreate' ? '?cas=0' : `?cas=${rev}`;
            const r = await call(t.url, 'PUT', `/v1/kv/${key}${q}`, value);
            const expectOk = c.op === 'put' || (c.op === 'putCreate' ? !cur : (cur?.rev ?? 0) === rev);
            assert.equal(r.body.ok, expectOk, `${c.op} ${key}${q}`);
            if (expectOk) model.set(key, { value, rev: r.body.modRevision });
          } else {
            const q = c.op === 'del' ? '' : `?cas=${rev}`;
            const r = await call(t.url, 'DELETE', `/v1/kv/${key}${q}`);
            const expectOk = c.op === 'del' || (cur !== undefined && cur.rev === rev);
            assert.equal(r.body.ok, expectOk, `${c.op} ${key}${q}`);
            if (expectOk) model.delete(key);
          }
        }
        const listed = (await call(t.url, 'GET', `/v1/kv/${ns}?recurse=1`)).body;
        assert.deepEqual(
          listed.map((e: any) => [e.key, e.value, e.modRevision]),
          [...model.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.value, v.rev]),
        );
      },
    ),
    { numRuns: 25 },
  );
});

/** Read NDJSON lines from a watch until `count` non-heartbeat lines arrived or `timeoutMs` passed. */
async function readWatch(path: string, count: number, timeoutMs = 10_000, keepHeartbeats = false) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const res = await fetch(t.url + path, { signal: controller.signal });
  const lines: any[] = [];
  let buf = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (keepHeartbeats || line.type !== 'heartbeat') lines.push(line);
      }
      if (lines.length >= count) break;
    }
  } catch (e) {
    if (!controller.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return { status: res.status, headers: res.headers, lines };
}

test('watch replays every change after fromIndex in order, then streams live ones', async () => {
  const start = (await call(t.url, 'PUT', '/v1/kv/w/0', 'zero')).index!;
  await call(t.url, 'PUT', '/v1/kv/w/1', 'one');
  await call(t.url, 'DELETE', '/v1/kv/w/0');
  await call(t.url, 'PUT', '/v1/kv/other', 'not watched');
  const watching = readWatch(`/v1/watch?prefix=kv/w/&fromIndex=${start}`, 4);
  await new Promise((r) => setTimeout(r, 200));
  await call(t.url, 'PUT', '/v1/kv/w/2', 'two');
  await call(t.url, 'PUT', '/v1/resources/Service/default/notkv', service('notkv'));
  await call(t.url, 'PUT', '/v1/kv/w/1', 'uno');
  const { status, lines } = await watching;
  assert.equal(status, 200);
  assert.deepEqual(
    lines.map((l) => [l.type, l.key, l.value]),
    [
      ['put', 'kv/w/1', 'one'],
      ['delete', 'kv/w/0', undefined],
      ['put', 'kv/w/2', 'two'],
      ['put', 'kv/w/1', 'uno'],
    ],
  );
  for (let i = 1; i < lines.length; i++) assert.ok(lines[i].index > lines[i - 1].index, 'indexes increase');
  assert.ok(lines[0].index > start);
});

test('watch on resources carries the resource with its resourceVersion; heartbeats flow; bad prefix is 400', async () => {
  const from = (await call(t.url, 'GET', '/v1/health')).index!;
  await call(t.url, 'PUT', '/v1/resources/Service/default/watched', service('watched'));
  const { lines } = await readWatch(`/v1/watch?prefix=resources&fromIndex=${from}`, 2, 10_000, true);
  assert.equal(lines[0].type, 'put');
  assert.equal(lines[0].key, 'resources/Service/default/watched');
  assert.equal(lines[0].value.metadata.resourceVersion, String(lines[0].index));
  assert.equal(lines[1].type, 'heartbeat');
  const bad = await call(t.url, 'GET', '/v1/watch?prefix=secrets');
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /resources, instances or kv/);
});

test('closing a watch frees its slot', async () => {
  await readWatch('/v1/watch?prefix=kv', 0, 300);
  for (let i = 0; i < 100 && t.cp.slots.used > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(t.cp.slots.used, 0);
});

test('issue 10: a watch from an index ahead of the store answers at once with the current index', async () => {
  const now = (await call(t.url, 'GET', '/v1/health')).index!;
  const started = Date.now();
  const { status, headers, lines } = await readWatch(`/v1/watch?prefix=kv&fromIndex=${now + 500}`, 1, 20_000);
  assert.ok(Date.now() - started < 5000, 'not held open waiting for revisions that do not exist');
  assert.equal(status, 200);
  assert.equal(lines[0].type, 'error');
  const current = Number(headers.get('x-hexmesh-index'));
  assert.ok(current >= now && current < now + 500);
  assert.equal(lines[0].index, current);
  assert.match(lines[0].message, new RegExp(`ahead of the store.*fromIndex=${current}`));
});

test('issue 10: the compaction hint says to re-read, never to resume from the compacted index (a loop)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hexmesh-compact-'));
  const store = await SqliteStore.open(join(dir, 'hexmesh.db'), {
    retainRevisions: 10,
    synchronous: 'normal',
  });
  const cp = await startCp({ store, watchHeartbeatMs: 200 });
  try {
    for (let i = 0; i < 40; i++) await call(cp.url, 'PUT', `/v1/kv/c/${i % 4}`, String(i));
    const read = async (path: string, count: number) => {
      const res = await fetch(cp.url + path, { signal: AbortSignal.timeout(10_000) });
      const lines: any[] = [];
      let buf = '';
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        buf += Buffer.from(chunk).toString('utf8');
        for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1))
          lines.push(JSON.parse(buf.slice(0, nl)));
        if (lines.length >= count) break;
      }
      return lines;
    };
    const [broke] = await read('/v1/watch?prefix=kv&fromIndex=1', 1);
    assert.equal(broke.type, 'error');
    assert.match(broke.message, /compacted/);
    assert.doesNotMatch(broke.message, /resume with fromIndex=1\b/);
    assert.match(broke.message, /re-read/);
    // Following the hint: re-read, then watch from the read's index — the watch stays up.
    const state = await call(cp.url, 'GET', '/v1/kv/c/?recurse=1');
    assert.equal(state.body.length, 4);
    assert.ok(broke.index >= state.index! - 1);
    const [next] = await read(`/v1/watch?prefix=kv&fromIndex=${state.index}`, 1);
    assert.equal(next.type, 'heartbeat', JSON.stringify(next));
  } finally {
    await cp.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
