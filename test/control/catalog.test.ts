import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCp, tempStore, call, eventually } from './helpers.ts';

const instance = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  service: 'reviews',
  address: '127.0.0.1',
  port: 9000,
  meshPort: 4143,
  labels: { version: 'v1' },
  checks: [{ name: 'http', type: 'http', path: '/health', interval: '1s' }],
  ...extra,
});

test('register → critical; passing status → listed with ?passing; summary counts; deregister', async () => {
  const t = await startCp();
  try {
    const r = await call(t.url, 'PUT', '/v1/catalog/register', instance('r1'));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.id, 'r1');
    assert.ok(r.body.lease > 0);
    await call(t.url, 'PUT', '/v1/catalog/register', instance('r2', { labels: { version: 'v2' } }));
    const all = await call(t.url, 'GET', '/v1/catalog/service/default/reviews');
    assert.deepEqual(
      all.body.map((i: any) => `${i.id}:${i.status}`),
      ['r1:critical', 'r2:critical'],
      'new instances start critical',
    );
    assert.deepEqual((await call(t.url, 'GET', '/v1/catalog/service/default/reviews?passing=1')).body, []);
    const s = await call(t.url, 'PUT', '/v1/catalog/status/default/reviews/r1', {
      status: 'passing',
      output: 'HTTP 200',
    });
    assert.equal(s.status, 200);
    const passing = await call(t.url, 'GET', '/v1/catalog/service/default/reviews?passing=1');
    assert.deepEqual(
      passing.body.map((i: any) => i.id),
      ['r1'],
    );
    assert.equal(passing.body[0].output, 'HTTP 200');
    await call(t.url, 'PUT', '/v1/catalog/status/default/reviews/r2', { status: 'warning' });
    const sum = await call(t.url, 'GET', '/v1/catalog/services');
    assert.deepEqual(sum.body, [
      {
        name: 'reviews',
        namespace: 'default',
        instances: 2,
        passing: 1,
        warning: 1,
        critical: 0,
        versions: ['v1', 'v2'],
      },
    ]);
    // Re-registering keeps the status (a reconnecting sidecar must not flap).
    await call(t.url, 'PUT', '/v1/catalog/register', instance('r1'));
    assert.equal((await call(t.url, 'GET', '/v1/catalog/service/default/reviews?passing=1')).body.length, 1);
    assert.equal((await call(t.url, 'PUT', '/v1/catalog/deregister/default/reviews/r1')).status, 200);
    assert.equal((await call(t.url, 'PUT', '/v1/catalog/deregister/default/reviews/r1')).status, 404);
    assert.equal(
      (await call(t.url, 'PUT', '/v1/catalog/status/default/reviews/r1', { status: 'passing' })).status,
      404,
    );
  } finally {
    await t.close();
  }
});

test('register validation lists every problem; a bad status is 400', async () => {
  const t = await startCp();
  try {
    const r = await call(t.url, 'PUT', '/v1/catalog/register', {
      service: 'Bad Name',
      port: 0,
      checks: [{ type: 'smoke' }],
    });
    assert.equal(r.status, 400);
    const paths = r.body.error.problems.map((p: any) => p.path).sort();
    assert.deepEqual(paths, ['address', 'checks[0].name', 'checks[0].type', 'port', 'service']);
    await call(t.url, 'PUT', '/v1/catalog/register', instance('v1'));
    const s = await call(t.url, 'PUT', '/v1/catalog/status/default/reviews/v1', { status: 'great' });
    assert.equal(s.status, 400);
    assert.equal(s.body.error.problems[0].path, 'status');
  } finally {
    await t.close();
  }
});

test('lease: heartbeats keep an instance; without them it disappears; heartbeat of an expired lease is 404', async () => {
  const t = await startCp();
  try {
    const kept = await call(t.url, 'PUT', '/v1/catalog/register', instance('kept', { ttl: '600ms' }));
    const lost = await call(t.url, 'PUT', '/v1/catalog/register', instance('lost', { ttl: '600ms' }));
    const stop = Date.now() + 2000;
    while (Date.now() < stop) {
      assert.equal((await call(t.url, 'PUT', `/v1/catalog/heartbeat/${kept.body.lease}`)).status, 200);
      await new Promise((r) => setTimeout(r, 150));
    }
    const ids = (await call(t.url, 'GET', '/v1/catalog/service/default/reviews')).body.map((i: any) => i.id);
    assert.deepEqual(ids, ['kept']);
    const hb = await call(t.url, 'PUT', `/v1/catalog/heartbeat/${lost.body.lease}`);
    assert.equal(hb.status, 404);
    assert.equal(hb.body.error.code, 'HEXMESH_ERR_NOT_FOUND');
  } finally {
    await t.close();
  }
});

test('the leader deregisters instances critical for too long; passing ones stay', async () => {
  const t = await startCp({ deregisterCriticalAfterMs: 400, reaperIntervalMs: 50, leaderTtlMs: 1000 });
  try {
    await eventually('leadership', async () => t.cp.isLeader);
    await call(t.url, 'PUT', '/v1/catalog/register', instance('sick'));
    await call(t.url, 'PUT', '/v1/catalog/register', instance('well'));
    await call(t.url, 'PUT', '/v1/catalog/status/default/reviews/well', { status: 'passing' });
    await eventually('sick instance removed', async () => {
      const ids = (await call(t.url, 'GET', '/v1/catalog/service/default/reviews')).body.map(
        (i: any) => i.id,
      );
      return ids.length === 1 && ids[0] === 'well';
    });
  } finally {
    await t.close();
  }
});

test('a lapsed TTL check turns the instance critical; a status report is the TTL pass', async () => {
  const t = await startCp({ reaperIntervalMs: 50, leaderTtlMs: 1000 });
  try {
    await eventually('leadership', async () => t.cp.isLeader);
    await call(
      t.url,
      'PUT',
      '/v1/catalog/register',
      instance('ttl', { checks: [{ name: 'beat', type: 'ttl', ttl: '500ms' }] }),
    );
    await call(t.url, 'PUT', '/v1/catalog/status/default/reviews/ttl', { status: 'passing' });
    const stop = Date.now() + 1500;
    while (Date.now() < stop) {
      await call(t.url, 'PUT', '/v1/catalog/status/default/reviews/ttl', { status: 'passing' });
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await call(t.url, 'GET', '/v1/catalog/service/default/reviews')).body[0].status, 'passing');
    const inst = await eventually('TTL lapse', async () => {
      const i = (await call(t.url, 'GET', '/v1/catalog/service/default/reviews')).body[0];
      return i.status === 'critical' && i;
    });
    assert.match(inst.output, /TTL check "beat" expired/);
  } finally {
    await t.close();
  }
});

test('two replicas on one store: one leader; closing it hands over; a dead leader is replaced after the lease TTL', async () => {
  const s = await tempStore();
  const a = await startCp({ store: s.store, leaderTtlMs: 600, id: 'a' });
  const b = await startCp({ store: s.store, leaderTtlMs: 600, id: 'b' });
  const c = await startCp({ store: s.store, leaderTtlMs: 600, id: 'c' });
  try {
    await eventually('a leader', async () => [a, b, c].some((x) => x.cp.isLeader));
    await new Promise((r) => setTimeout(r, 700));
    assert.equal([a, b, c].filter((x) => x.cp.isLeader).length, 1, 'exactly one leader');
    assert.deepEqual(
      [a, b, c].map((x) => x.cp.reaper.running),
      [a, b, c].map((x) => x.cp.isLeader),
      'the reaper runs on the leader only',
    );
    const first = [a, b, c].find((x) => x.cp.isLeader)!;
    const health = await call(first.url, 'GET', '/v1/health');
    assert.equal(health.body.leader, true);
    // Graceful close resigns: another replica leads promptly.
    await first.cp.close();
    const rest = [a, b, c].filter((x) => x !== first);
    const second = await eventually('a new leader', async () => rest.find((x) => x.cp.isLeader), 5000);
    assert.equal(rest.filter((x) => x.cp.isLeader).length, 1);
    // A crash (no resign): the last replica takes over only after the lease expires.
    const last = rest.find((x) => x !== second)!;
    const killedAt = Date.now();
    await second.cp.destroy();
    await eventually('takeover after the lease TTL', async () => last.cp.isLeader, 5000);
    assert.ok(Date.now() - killedAt >= 300, 'not before the lease could expire');
    assert.equal((await call(last.url, 'GET', '/v1/health')).body.leader, true);
  } finally {
    for (const x of [a, b, c]) await x.cp.close();
    await s.close();
  }
});
