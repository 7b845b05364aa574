/** The main API flow against a real three-member etcd cluster, with two replicas on it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdCluster, etcdMissingReason } from '../support/etcd-cluster.ts';
import { EtcdStore } from '../../src/store/etcd-store.ts';
import type { Store } from '../../src/store/store.ts';
import { startCp, call, eventually, service, route, type TestCp } from './helpers.ts';

const skip = etcdMissingReason();

test(
  'control plane over etcd: two replicas, resources, blocking, catalog, KV, watch, one leader',
  { skip, timeout: 120_000 },
  async () => {
    const cluster = await EtcdCluster.start(3);
    const stores: Store[] = [];
    const cps: TestCp[] = [];
    try {
      for (const id of ['e1', 'e2']) {
        const store = await EtcdStore.connect(cluster.endpoints);
        stores.push(store);
        cps.push(await startCp({ store, id, leaderTtlMs: 2000 }));
      }
      const [a, b] = cps;
      assert.equal((await call(a.url, 'GET', '/v1/health')).body.store.kind, 'etcd');
      // Apply on one replica, read on the other.
      const ap = await call(a.url, 'POST', '/v1/apply', [service('web'), route('web-r', 'web')]);
      assert.equal(ap.status, 200, JSON.stringify(ap.body));
      assert.deepEqual(ap.body.warnings, []);
      const g = await call(b.url, 'GET', '/v1/resources/HTTPRoute/default/web-r');
      assert.equal(g.body.metadata.resourceVersion, ap.body.results[1].resourceVersion);
      // Stale resourceVersion: 409.
      const stale = {
        ...service('web'),
        metadata: { name: 'web', resourceVersion: String(Number(ap.body.results[0].resourceVersion) - 1) },
      };
      assert.equal((await call(b.url, 'PUT', '/v1/resources/Service/default/web', stale)).status, 409);
      // Invalid: nothing written.
      const bad = await call(a.url, 'POST', '/v1/apply', [service('ok2'), { ...service('x'), spec: {} }]);
      assert.equal(bad.status, 400);
      assert.equal((await call(a.url, 'GET', '/v1/resources/Service/default/ok2')).status, 404);
      // A blocking query on replica A wakes on a write through replica B.
      const idx = (await call(a.url, 'GET', '/v1/catalog/service/default/web')).index!;
      const started = Date.now();
      const pending = call(a.url, 'GET', `/v1/catalog/service/default/web?index=${idx}&wait=30s`);
      await new Promise((r) => setTimeout(r, 200));
      const reg = await call(b.url, 'PUT', '/v1/catalog/register', {
        id: 'w1',
        service: 'web',
        address: '127.0.0.1',
        port: 8080,
        checks: [{ name: 'h', type: 'tcp' }],
        ttl: '5s',
      });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      const woke = await pending;
      assert.ok(Date.now() - started < 15_000);
      assert.deepEqual(
        woke.body.map((i: any) => `${i.id}:${i.status}`),
        ['w1:critical'],
      );
      await call(a.url, 'PUT', '/v1/catalog/status/default/web/w1', { status: 'passing' });
      assert.equal((await call(b.url, 'GET', '/v1/catalog/service/default/web?passing=1')).body.length, 1);
      assert.equal((await call(b.url, 'PUT', `/v1/catalog/heartbeat/${reg.body.lease}`)).status, 200);
      // KV CAS and a watch from an index.
      const k = await call(a.url, 'PUT', '/v1/kv/cfg?cas=0', 'v1');
      assert.equal(k.body.ok, true);
      assert.equal((await call(b.url, 'PUT', '/v1/kv/cfg?cas=0', 'v2')).body.ok, false);
      await call(b.url, 'PUT', `/v1/kv/cfg?cas=${k.body.modRevision}`, 'v3');
      const res = await fetch(`${b.url}/v1/watch?prefix=kv&fromIndex=${k.body.modRevision - 1}`);
      const reader = res.body!.getReader();
      let text = '';
      const deadline = Date.now() + 10_000;
      while (text.split('\n').filter((l) => l.includes('"put"')).length < 2 && Date.now() < deadline)
        text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      const values = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((l) => l.type === 'put')
        .map((l) => l.value);
      assert.deepEqual(values, ['v1', 'v3']);
      // Exactly one leader; closing it hands over.
      await eventually('one leader', async () => cps.filter((c) => c.cp.isLeader).length === 1);
      const leader = cps.find((c) => c.cp.isLeader)!;
      const other = cps.find((c) => c !== leader)!;
      await leader.cp.close();
      await eventually('the other replica leads', async () => other.cp.isLeader, 15_000);
    } finally {
      for (const c of cps) await c.cp.close();
      for (const s of stores) await s.close();
      await cluster.stop();
    }
  },
);
