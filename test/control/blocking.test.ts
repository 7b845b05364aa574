import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCp, call, service, type TestCp } from './helpers.ts';

let t: TestCp;
before(async () => {
  t = await startCp({ maxWaiters: 8 });
});
after(() => t.close());

test('a blocking query returns on a change well before its wait', async () => {
  const first = await call(t.url, 'GET', '/v1/resources?kind=Service');
  const started = Date.now();
  const pending = call(t.url, 'GET', `/v1/resources?kind=Service&index=${first.index}&wait=20s`);
  await new Promise((r) => setTimeout(r, 200));
  await call(t.url, 'PUT', '/v1/resources/Service/default/blk', service('blk'));
  const r = await pending;
  assert.ok(Date.now() - started < 10_000, 'returned on the change, not after the 20 s wait');
  assert.ok(r.index! > first.index!, 'index moved forward');
  assert.ok(r.body.some((s: any) => s.metadata.name === 'blk'));
});

test('a blocking query returns after its wait when nothing relevant changed (a KV write does not wake a resource read)', async () => {
  const first = await call(t.url, 'GET', '/v1/resources?kind=Service');
  const started = Date.now();
  const pending = call(t.url, 'GET', `/v1/resources?kind=Service&index=${first.index}&wait=1s`);
  await call(t.url, 'PUT', '/v1/kv/unrelated', 'v');
  const r = await pending;
  const took = Date.now() - started;
  assert.ok(took >= 950, `waited ${took} ms`);
  assert.ok(took < 1000 + 1000 / 16 + 3000, `waited ${took} ms (wait + jitter + slack)`);
  assert.ok(r.index! >= first.index!, 'index header monotonic');
});

test('a change made between the read and the blocking query returns at once', async () => {
  const first = await call(t.url, 'GET', '/v1/kv/raced');
  await call(t.url, 'PUT', '/v1/kv/raced', '1');
  const started = Date.now();
  const r = await call(t.url, 'GET', `/v1/kv/raced?index=${first.index}&wait=20s`);
  assert.ok(Date.now() - started < 5000);
  assert.equal(r.body.value, '1');
});

test('index header is monotonic across reads and writes', async () => {
  let last = 0;
  for (let i = 0; i < 20; i++) {
    await call(t.url, 'PUT', `/v1/kv/mono/${i % 3}`, String(i));
    const r = await call(t.url, 'GET', '/v1/kv/mono?recurse=1');
    assert.ok(r.index! >= last, `${r.index} >= ${last}`);
    last = r.index!;
  }
});

test('bad blocking parameters are 400 naming the parameter', async () => {
  const a = await call(t.url, 'GET', '/v1/catalog/services?index=-1');
  assert.equal(a.status, 400);
  assert.match(a.body.error.message, /index must be/);
  const b = await call(t.url, 'GET', '/v1/catalog/services?index=1&wait=forever');
  assert.equal(b.status, 400);
  assert.match(b.body.error.message, /wait must be a duration/);
});

test('a flood of blocking queries beyond the limit gets 503 with a clear message; the server recovers', async () => {
  const idx = (await call(t.url, 'GET', '/v1/catalog/services')).index!;
  const controller = new AbortController();
  const holders = Array.from({ length: 8 }, () =>
    fetch(`${t.url}/v1/catalog/services?index=${idx}&wait=30s`, { signal: controller.signal }).catch(
      () => undefined,
    ),
  );
  // Wait until all 8 are parked.
  for (let i = 0; i < 100 && t.cp.slots.used < 8; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(t.cp.slots.used, 8);
  const extra = await Promise.all(
    Array.from({ length: 20 }, () => call(t.url, 'GET', `/v1/catalog/services?index=${idx}&wait=30s`)),
  );
  for (const r of extra) {
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, 'HEXMESH_ERR_OVERLOADED');
    assert.match(r.body.error.message, /too many concurrent blocking queries and watches.*limit 8/);
  }
  // Plain reads are never limited.
  assert.equal((await call(t.url, 'GET', '/v1/catalog/services')).status, 200);
  controller.abort();
  await Promise.all(holders);
  for (let i = 0; i < 100 && t.cp.slots.used > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(t.cp.slots.used, 0, 'slots released when clients go away');
  const again = await call(t.url, 'GET', `/v1/catalog/services?index=${idx}&wait=100ms`);
  assert.equal(again.status, 200);
});

test('issue 10: an index ahead of the store (a restore from backup) returns at once with the current index', async () => {
  const now = (await call(t.url, 'GET', '/v1/kv/ahead/x')).index!;
  const ahead = now + 500; // the index a client kept from before the store was restored
  for (const path of [
    `/v1/resources?kind=Service&index=${ahead}&wait=20s`,
    `/v1/kv/ahead/x?index=${ahead}&wait=20s`,
    `/v1/catalog/services?index=${ahead}&wait=20s`,
  ]) {
    const started = Date.now();
    const r = await call(t.url, 'GET', path);
    assert.ok(Date.now() - started < 5000, `${path}: returned at once, not after the 20 s wait`);
    assert.ok(r.index! < ahead && r.index! >= now, `${path}: the current index ${r.index} to reset to`);
  }
  // With the index it got back, the client blocks again as usual (and wakes on a change).
  const r = await call(t.url, 'GET', '/v1/kv/ahead/x');
  const pending = call(t.url, 'GET', `/v1/kv/ahead/x?index=${r.index}&wait=20s`);
  await new Promise((res) => setTimeout(res, 200));
  await call(t.url, 'PUT', '/v1/kv/ahead/x', 'v');
  assert.equal((await pending).body.value, 'v');
});
