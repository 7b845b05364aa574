/**
 * Leader election on a coordination.k8s.io Lease against a real kube-apiserver: one holder
 * at a time; a resigning leader hands over at once; a dead one (no resignation) after the
 * lease duration; and only the leader's mirror writes the store.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeApi } from '../../src/control/kubernetes/kube-api.ts';
import { LeaseElection } from '../../src/control/kubernetes/lease-election.ts';
import { KubernetesSource } from '../../src/control/kubernetes/kubernetes-source.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS } from '../../src/store/store.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';
import { until } from '../control/discovery-support.ts';

const skip = kubeApiserverMissingReason();
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';

describe('kubernetes: leader election on a Lease', { skip }, () => {
  let kube: KubeApiServer;
  let api: KubeApi;
  const dirs: string[] = [];

  before(async () => {
    kube = await KubeApiServer.start();
    api = await KubeApi.load(kube.kubeconfig);
  });

  after(async () => {
    await kube?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const holder = async (name: string) =>
    (await kube.must<{ spec: { holderIdentity?: string } }>('GET', `${LEASES}/${name}`)).spec.holderIdentity;

  it('one holder at a time; resigning hands over at once, dying after the lease duration', async () => {
    const opts = { namespace: 'default', name: 'election', leaseDurationMs: 2000, renewMs: 200 };
    const a = new LeaseElection(api, { ...opts, id: 'a' });
    await a.start();
    assert.equal(a.isLeader, true);
    const b = new LeaseElection(api, { ...opts, id: 'b' });
    await b.start();
    assert.equal(b.isLeader, false);
    assert.equal(await holder('election'), 'a');
    // Resignation: b takes over at its next tick, well before the lease duration.
    const t0 = Date.now();
    await a.close({ resign: true });
    await until(() => (b.isLeader ? true : undefined), 10_000, 'b leads after a resigned');
    assert.ok(Date.now() - t0 < 2000, `handover after resignation took ${Date.now() - t0} ms`);
    assert.equal(await holder('election'), 'b');
    // A dead leader (closed without resigning) is replaced only once its lease lapses.
    const c = new LeaseElection(api, { ...opts, id: 'c' });
    await c.start();
    assert.equal(c.isLeader, false);
    const t1 = Date.now();
    await b.close();
    await until(() => (c.isLeader ? true : undefined), 15_000, 'c leads after b died');
    assert.ok(Date.now() - t1 >= 1500, `c took over after ${Date.now() - t1} ms, before the lease lapsed`);
    const lease = await kube.must<{ spec: { holderIdentity: string; leaseTransitions: number } }>(
      'GET',
      `${LEASES}/election`,
    );
    assert.equal(lease.spec.holderIdentity, 'c');
    assert.equal(lease.spec.leaseTransitions, 2);
    await c.close({ resign: true });
  });

  it('two control planes with their own stores: only the Lease holder mirrors', async () => {
    const stores: SqliteStore[] = [];
    const sources: KubernetesSource[] = [];
    for (const id of ['one', 'two']) {
      const d = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-lease-'));
      dirs.push(d);
      const store = await SqliteStore.open(join(d, 'hexmesh.db'), { synchronous: 'normal' });
      stores.push(store);
      const s = new KubernetesSource({
        store,
        kubeconfig: kube.kubeconfig,
        id,
        leaderTtlMs: 2000,
        lease: { namespace: 'default', name: 'mirror' },
      });
      await s.start();
      sources.push(s);
    }
    try {
      assert.deepEqual(
        sources.map((s) => s.isLeader),
        [true, false],
      );
      await kube.must('POST', '/api/v1/namespaces/default/services', {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web' },
        spec: { ports: [{ port: 80 }] },
      });
      await until(
        async () => (await stores[0].get(KEYS.resource('Service', 'default', 'web'))) ?? undefined,
        10_000,
        'leader mirrored',
      );
      assert.equal(
        await stores[1].get(KEYS.resource('Service', 'default', 'web')),
        undefined,
        'the follower wrote nothing',
      );
      // The leader resigns: the other takes over and catches up with a full resync.
      await sources[0].close();
      await until(
        async () => (await stores[1].get(KEYS.resource('Service', 'default', 'web'))) ?? undefined,
        10_000,
        'new leader caught up',
      );
      assert.equal(sources[1].isLeader, true);
    } finally {
      for (const s of sources) await s.close();
      for (const s of stores) await s.close();
    }
  });
});
