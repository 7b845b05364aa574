/**
 * A member that stops answering without closing its connections (its host died: no FIN, no
 * RST) must not hang the store's calls. A lease keep-alive runs on a stream, which had no
 * deadline: it waited forever, and with it every later renewal of the control plane's
 * discovery sessions, so their instances lapsed (seen across hosts: test/multihost/).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EtcdStore } from '../../src/store/etcd-store.ts';
import { StoreUnavailableError } from '../../src/store/store.ts';
import { EtcdCluster, etcdMissingReason } from '../support/etcd-cluster.ts';

test(
  'keepAlive through a silent member fails within the call timeout instead of hanging',
  { skip: etcdMissingReason(), timeout: 120_000 },
  async (t) => {
    const cluster = await EtcdCluster.start(3);
    t.after(() => cluster.stop());
    // Only the member that goes silent: there is nowhere to fail over to, the call must end.
    const store = await EtcdStore.connect([cluster.endpoint(0)], { callTimeoutMs: 1000 });
    t.after(() => store.close());
    const lease = await store.grantLease(10_000);
    await store.keepAlive(lease);
    cluster.freeze(0);
    t.after(() => cluster.thaw(0));
    const t0 = Date.now();
    await assert.rejects(store.keepAlive(lease), StoreUnavailableError);
    const took = Date.now() - t0;
    assert.ok(took < 10_000, `keepAlive took ${took} ms to give up`);
  },
);

test(
  'keepAlive with a dead member among three renews every time (tried again on another member)',
  { skip: etcdMissingReason(), timeout: 120_000 },
  async (t) => {
    const cluster = await EtcdCluster.start(3);
    t.after(() => cluster.stop());
    const store = await EtcdStore.connect(cluster.endpoints, { callTimeoutMs: 2000 });
    t.after(() => store.close());
    const lease = await store.grantLease(30_000);
    // Member 0 dies; the leader (or a new one) keeps the cluster going on the other two.
    await cluster.kill(0);
    await cluster.waitHealthy(1);
    // The client picks members at random until the dead one's circuit breaker opens (three
    // failures): renewals that were not tried again failed ~1 in 3 of those picks.
    for (let i = 0; i < 12; i++) await store.keepAlive(lease);
  },
);
