import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, eventually } from './helpers.ts';
import { startStatsMesh } from './metrics-support.ts';
import type { EdgesView, RoutesView, ServicesView, TimeseriesView } from '../../src/control/metrics/views.ts';

test(
  'a real mesh under load: services, edges, routes and timeseries show the traffic',
  { timeout: 60_000 },
  async () => {
    const m = await startStatsMesh();
    try {
      const counts = await m.load(200);
      assert.equal(counts.get(200), 180);
      assert.equal(counts.get(500), 20);

      // Counts are exact: every increase between two scrapes lands in the window.
      const view = await eventually('the load in /v1/stats/services', async () => {
        const r = await call<ServicesView>(m.cp.url, 'GET', '/v1/stats/services?window=1m');
        assert.equal(r.status, 200);
        const s = r.body.services.find((x) => x.service === 'ratings');
        return s && s.requests >= 200 ? r.body : undefined;
      });
      const ratings = view.services.find((x) => x.service === 'ratings')!;
      assert.equal(ratings.namespace, 'default');
      assert.equal(ratings.requests, 200);
      assert.ok(Math.abs(ratings.rps - 200 / 60) < 0.01, `rps ${ratings.rps}`);
      assert.equal(ratings.successRate, 0.9);
      assert.equal(ratings.instances, 1);
      assert.equal(ratings.stale, 0);
      assert.equal(ratings.tlsPercent, 0); // plaintext sidecars
      assert.ok(ratings.latencyMs.p50! > 0 && ratings.latencyMs.p50! <= ratings.latencyMs.p99!);
      assert.ok(ratings.latencyMs.p99! < 5000, `p99 ${ratings.latencyMs.p99}`);
      // The client service has an instance but no inbound traffic.
      const client = view.services.find((x) => x.service === 'client')!;
      assert.equal(client.requests, 0);
      assert.equal(client.successRate, null);
      assert.equal(client.instances, 1);

      const edges = (await call<EdgesView>(m.cp.url, 'GET', '/v1/stats/edges')).body.edges;
      const edge = edges.find((e) => e.src === 'client' && e.dst === 'ratings');
      assert.ok(edge, JSON.stringify(edges));
      assert.equal(edge.requests, 200);
      assert.equal(edge.successRate, 0.9);
      assert.ok(edge.p99Ms! > 0);

      const routes = (await call<RoutesView>(m.cp.url, 'GET', '/v1/stats/routes?service=ratings')).body
        .routes;
      assert.deepEqual(
        routes.map((r) => [r.route, r.requests, r.successRate]),
        [['default', 200, 0.9]],
      );

      const ts = (
        await call<TimeseriesView>(
          m.cp.url,
          'GET',
          '/v1/stats/timeseries?service=ratings&metric=rps&window=1m&step=1s',
        )
      ).body;
      assert.equal(ts.stepMs, 1000);
      assert.ok(ts.points.length >= 59 && ts.points.length <= 61, `${ts.points.length} points`);
      const total = ts.points.reduce((a, [, v]) => a + (v ?? 0) * (ts.stepMs / 1000), 0);
      assert.ok(Math.abs(total - 200) < 0.5, `timeseries total ${total}`);
      const success = (
        await call<TimeseriesView>(
          m.cp.url,
          'GET',
          '/v1/stats/timeseries?service=ratings&metric=success&window=1m&step=1m',
        )
      ).body;
      assert.deepEqual(
        success.points.map((p) => p[1]),
        [0.9],
      );

      // Filters and bad input.
      const other = await call<ServicesView>(m.cp.url, 'GET', '/v1/stats/services?namespace=other');
      assert.deepEqual(other.body.services, []);
      assert.equal((await call(m.cp.url, 'GET', '/v1/stats/services?window=banana')).status, 400);
      assert.equal((await call(m.cp.url, 'GET', '/v1/stats/services?window=2h')).status, 400);
      assert.equal((await call(m.cp.url, 'GET', '/v1/stats/routes')).status, 400);
      assert.equal((await call(m.cp.url, 'GET', '/v1/stats/timeseries?service=x&metric=p50')).status, 400);
    } finally {
      await m.close();
    }
  },
);

test('a proxy that stops answering is marked stale, not healthy', { timeout: 60_000 }, async () => {
  const m = await startStatsMesh();
  try {
    await m.load(20);
    await eventually('the load to be scraped', async () => {
      const r = await call<ServicesView>(m.cp.url, 'GET', '/v1/stats/services?service=ratings');
      return r.body.services[0]?.requests === 20;
    });
    await m.pair.server.close();
    const s = await eventually('ratings to be stale', async () => {
      const r = await call<ServicesView>(m.cp.url, 'GET', '/v1/stats/services?service=ratings');
      const x = r.body.services[0];
      return x?.stale === 1 ? x : undefined;
    });
    assert.equal(s.instances, 1);
    // Its history stays: the requests it served are still in the window.
    assert.equal(s.requests, 20);
    const t = (await call(m.cp.url, 'GET', '/v1/stats/targets')).body;
    const target = t.targets.find((x: { id: string }) => x.id === 'ratings-1');
    assert.equal(target.stale, true);
    assert.match(target.error, /ECONNREFUSED|fetch failed|refused/i);
    assert.equal(t.targets.find((x: { id: string }) => x.id === 'client-1').stale, false);
  } finally {
    await m.close();
  }
});

test('a follower replica has no metrics and says so', { timeout: 30_000 }, async () => {
  const { startCp, tempStore } = await import('./helpers.ts');
  const store = await tempStore();
  const a = await startCp({ store: store.store, metrics: { intervalMs: 100 } });
  const b = await startCp({ store: store.store, metrics: { intervalMs: 100 } });
  try {
    const follower = a.cp.isLeader ? b : a;
    assert.equal(follower.cp.isLeader, false);
    const r = await call(follower.url, 'GET', '/v1/stats/services');
    assert.equal(r.status, 404);
    assert.match(r.body.error.message, /leader/);
    const leader = a.cp.isLeader ? a : b;
    await eventually('leader collecting', async () => leader.cp.metrics.collecting);
    assert.equal((await call(leader.url, 'GET', '/v1/stats/services')).status, 200);
  } finally {
    await a.close();
    await b.close();
    await store.close();
  }
});
