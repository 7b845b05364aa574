/**
 * Leader election races: resignation during the watch's start, close during a campaign,
 * a renewal that hangs past the lease, a leader key deleted under the leader. A real
 * SQLite store; `SlowStore` delegates to it and only delays chosen calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KEYS } from '../../src/store/store.ts';
import { LeaderElection } from '../../src/control/leader.ts';
import { eventually, tempStore } from './helpers.ts';
import { SlowStore, sleep } from './slow-store.ts';

test('a resignation while the follower starts its watch is seen at once, not at the next poll', async () => {
  const s = await tempStore();
  const slow = new SlowStore(s.store);
  slow.watchAckMs = 300;
  const a = new LeaderElection(s.store, { id: 'a', ttlMs: 30_000 });
  const b = new LeaderElection(slow, { id: 'b', ttlMs: 30_000 });
  try {
    await a.start();
    assert.equal(a.isLeader, true);
    await b.start();
    assert.equal(b.isLeader, false);
    await a.close(); // resigns: the key is deleted before a revision-less watch would start
    // The poll is every TTL/3 = 10 s; the watch must carry the delete.
    await eventually('b takes over', async () => b.isLeader, 3000);
  } finally {
    await a.close();
    await b.close();
    await slow.close();
    await s.close();
  }
});

test('closing during a campaign leaves no leader key behind and never reports leadership', async () => {
  const s = await tempStore();
  const slow = new SlowStore(s.store);
  slow.grantDelayMs = 200;
  const changes: boolean[] = [];
  const a = new LeaderElection(slow, { id: 'a', ttlMs: 30_000, onChange: (l) => changes.push(l) });
  try {
    const started = a.start();
    await sleep(50);
    await a.close();
    await started;
    assert.equal(await s.store.get(KEYS.leader('controller')), undefined, 'no key held for a TTL');
    assert.equal(a.isLeader, false);
    assert.deepEqual(
      changes.filter((l) => l),
      [],
      'no leadership after close',
    );
  } finally {
    await a.close();
    await slow.close();
    await s.close();
  }
});

test('a leader whose renewal hangs past its lease stops leading before another replica takes over', async () => {
  const s = await tempStore();
  const slow = new SlowStore(s.store);
  const changes: boolean[] = [];
  const a = new LeaderElection(slow, { id: 'a', ttlMs: 600, onChange: (l) => changes.push(l) });
  const b = new LeaderElection(s.store, { id: 'b', ttlMs: 600 });
  try {
    await a.start();
    assert.equal(a.isLeader, true);
    await b.start();
    slow.hangKeepAlive = true;
    // Generous: the point is the order (a steps down before b leads), not how fast on a loaded machine.
    await eventually('b takes over once a’s lease lapses', async () => b.isLeader, 15_000);
    assert.equal(a.isLeader, false, 'two leaders at once');
    await eventually('a is told it lost leadership', async () => changes.at(-1) === false, 2000);
  } finally {
    slow.hangKeepAlive = false;
    await a.close();
    await b.close();
    await slow.close();
    await s.close();
  }
});

test('a leader whose key is deleted steps down and the election goes on (one leader)', async () => {
  const s = await tempStore();
  const a = new LeaderElection(s.store, { id: 'a', ttlMs: 30_000 });
  const b = new LeaderElection(s.store, { id: 'b', ttlMs: 30_000 });
  try {
    await a.start();
    await b.start();
    assert.equal(a.isLeader, true);
    await s.store.delete(KEYS.leader('controller'));
    await eventually('someone leads again', async () => (await a.leader()) !== undefined, 3000);
    await sleep(100);
    const holder = await a.leader();
    assert.deepEqual(
      [a.isLeader, b.isLeader],
      [holder === 'a', holder === 'b'],
      'the replica that thinks it leads is the one in the key',
    );
  } finally {
    await a.close();
    await b.close();
    await s.close();
  }
});
