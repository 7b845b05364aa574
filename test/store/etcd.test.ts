import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../src/store/etcd-store.ts';
import { openStore } from '../../src/store/open-store.ts';
import { StoreCompactedError, StoreConflictError, StoreUnavailableError } from '../../src/store/store.ts';
import { EtcdCluster, etcdMissingReason } from '../support/etcd-cluster.ts';
import { Recorder, runStoreConformance, sleep, uniquePrefix, waitFor } from './conformance.ts';

const missing = etcdMissingReason();

if (missing && process.env.CI === 'true') {
  test('etcd is installed for the etcd store tests', () => {
    assert.fail(`${missing}. In CI the etcd store tests must run.`);
  });
} else if (missing) {
  test('etcd store tests', { skip: missing }, () => {});
} else {
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await EtcdCluster.start(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  runStoreConformance(
    'etcd (three members on loopback)',
    () => EtcdStore.connect(cluster.endpoints),
    undefined,
    {
      leaseTtlMs: 2000,
      expiryWaitMs: 10_000,
      modelRuns: 8,
    },
  );

  describe('etcd store: cluster behaviour', () => {
    test('one member killed mid-test: writes, CAS, leases and watches keep working; it rejoins', async () => {
      const store = await EtcdStore.connect(cluster.endpoints);
      const p = uniquePrefix('kill');
      try {
        const start = (await store.revision()) + 1;
        const rec = new Recorder(store, p, start);
        let expected = 0;
        let last = 0;
        for (let i = 0; i < 10; i++) {
          last = (await store.put(`${p}before/${i}`, String(i))).revision;
          expected++;
        }
        await rec.waitForEvents(expected);

        // Kill the member our watch streams through, so the watch must fail over; if that
        // is not known (older etcd without the gauge), kill the leader.
        const streams = await Promise.all([0, 1, 2].map((i) => cluster.watchStreams(i)));
        const victim = streams.indexOf(1) >= 0 ? streams.indexOf(1) : await leaderIndex(cluster);
        await cluster.kill(victim);

        const counter = `${p}counter`;
        let cas = (await store.put(counter, '0')).revision;
        expected++;
        for (let i = 1; i <= 20; i++) {
          const w = await store.put(counter, String(i), { prevModRevision: cas });
          assert.ok(w.revision > last);
          last = cas = w.revision;
          expected++;
        }
        await assert.rejects(store.put(counter, 'stale', { prevModRevision: cas - 1 }), StoreConflictError);
        const lease = await store.grantLease(5000);
        await store.put(`${p}leased`, 'x', { lease });
        expected++;
        await store.keepAlive(lease);
        assert.equal((await store.get(counter))?.value, '20');
        assert.equal((await store.range(`${p}before/`)).kvs.length, 10);

        const events = await rec.waitForEvents(expected, 20_000);
        assert.equal(events.length, expected, 'no event lost or repeated across the failover');
        for (let i = 1; i < events.length; i++) {
          assert.ok(
            events[i]!.kv.modRevision > events[i - 1]!.kv.modRevision,
            `event ${i} out of order or repeated`,
          );
        }
        assert.equal(events[events.length - 1]!.kv.key, `${p}leased`);
        assert.equal(rec.errors.length, 0, `watch errors: ${rec.errors.map(String).join('; ')}`);

        // The member comes back on its data dir and catches up.
        await cluster.restart(victim);
        await store.put(`${p}after`, 'back');
        const only = await EtcdStore.connect([cluster.endpoint(victim)]);
        try {
          await waitFor(
            async () => (await only.get(`${p}after`))?.value === 'back',
            10_000,
            'the restarted member to catch up',
          );
          assert.equal((await only.get(counter))?.value, '20');
        } finally {
          await only.close();
        }
        await store.revokeLease(lease);
        rec.close();
      } finally {
        await store.close();
      }
    });

    test('a watch from a compacted revision fails with StoreCompactedError', async () => {
      const store = await EtcdStore.connect(cluster.endpoints);
      try {
        const p = uniquePrefix('compact');
        const first = await store.put(`${p}k`, '0');
        for (let i = 1; i < 5; i++) await store.put(`${p}k`, String(i));
        const rev = await store.revision();
        await store.compact(rev);
        assert.equal(await store.isCompacted(first.revision), true);
        const rec = new Recorder(store, p, first.revision);
        await waitFor(() => rec.errors.length > 0, 10_000, 'the compacted watch to fail');
        assert.ok(rec.errors[0] instanceof StoreCompactedError, String(rec.errors[0]));
        assert.match(rec.errors[0].message, new RegExp(`revision ${first.revision} was compacted`));
        // The current value is intact and a watch from the compaction point works.
        assert.equal((await store.get(`${p}k`))?.value, '4');
        const ok = new Recorder(store, p, rev);
        await ok.waitForEvents(1);
        ok.close();
      } finally {
        await store.close();
      }
    });

    test('openStore parses etcd:// URLs with several hosts and connects', async () => {
      const url = `etcd://${cluster.endpoints.map((e) => e.replace('http://', '')).join(',')}`;
      const dir = mkdtempSync(join(tmpdir(), 'hexmesh-store-'));
      try {
        const s = await openStore(url, dir);
        try {
          assert.equal(s.kind, 'etcd');
          assert.deepEqual((s as EtcdStore).endpoints, cluster.endpoints);
          const k = `${uniquePrefix('open')}k`;
          await s.put(k, 'v');
          assert.equal((await s.get(k))?.value, 'v');
        } finally {
          await s.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('no reachable member: StoreUnavailableError naming the endpoint', async () => {
      const port = await closedPort();
      const started = Date.now();
      await assert.rejects(
        EtcdStore.connect([`http://127.0.0.1:${port}`], { callTimeoutMs: 1000 }),
        (err: unknown) => {
          assert.ok(err instanceof StoreUnavailableError, String(err));
          assert.equal(err.code, 'HEXMESH_ERR_STORE_UNAVAILABLE');
          assert.match(err.message, new RegExp(`etcd http://127.0.0.1:${port}: revision failed`));
          return true;
        },
      );
      assert.ok(Date.now() - started < 30_000);
    });
  });
}

/** Index of the member that is currently the raft leader. */
async function leaderIndex(c: EtcdCluster): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    for (let i = 0; i < 3; i++) {
      const client = new Etcd3({ hosts: c.endpoint(i) });
      try {
        const status = await client.maintenance.status();
        if (status.leader === status.header.member_id) return i;
      } catch {
        // not answering: try the next member
      } finally {
        client.close();
      }
    }
    await sleep(100);
  }
  throw new Error('no etcd leader found');
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
