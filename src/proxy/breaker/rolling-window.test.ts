import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RollingWindow, type WindowCounts, type WindowEvent } from './rolling-window.ts';

const EVENTS: WindowEvent[] = ['success', 'failure', 'timeout', 'rejection'];

/** Reference: count the events whose bucket is one of the last `buckets` buckets. */
function expected(
  log: { t: number; event: WindowEvent; slow: boolean }[],
  now: number,
  bucketMs: number,
  buckets: number,
): WindowCounts {
  const current = Math.floor(now / bucketMs);
  const c: WindowCounts = { success: 0, failure: 0, timeout: 0, rejection: 0, slow: 0 };
  for (const e of log) {
    if (Math.floor(e.t / bucketMs) <= current - buckets) continue;
    c[e.event]++;
    if (e.slow) c.slow++;
  }
  return c;
}

test('counts equal the events in the last window', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 500 }),
      fc.array(
        fc.record({
          dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 8000 })),
          event: fc.constantFrom(...EVENTS),
          slow: fc.boolean(),
          read: fc.boolean(),
        }),
        { maxLength: 200 },
      ),
      (buckets, bucketMs, steps) => {
        let now = 0;
        const w = new RollingWindow({ window: buckets * bucketMs, buckets, now: () => now });
        const log: { t: number; event: WindowEvent; slow: boolean }[] = [];
        for (const s of steps) {
          now += s.dt;
          if (s.read) {
            assert.deepEqual(w.counts(), expected(log, now, bucketMs, buckets));
            continue;
          }
          w.record(s.event, s.slow);
          log.push({ t: now, event: s.event, slow: s.slow });
        }
        const want = expected(log, now, bucketMs, buckets);
        assert.deepEqual(w.counts(), want);
        assert.equal(w.total(), want.success + want.failure + want.timeout + want.rejection);
        // Window-level bounds, independent of buckets: anything younger than window − bucket
        // is counted, nothing at least a window old is.
        const all = log.length;
        const young = log.filter((e) => now - e.t < buckets * bucketMs - bucketMs).length;
        const notOld = log.filter((e) => now - e.t < buckets * bucketMs).length;
        assert.ok(w.total() >= young && w.total() <= notOld && w.total() <= all);
      },
    ),
    { numRuns: 300 },
  );
});

test('reset forgets everything; default is 10 s in 10 buckets', () => {
  let now = 0;
  const w = new RollingWindow({ now: () => now });
  assert.equal(w.windowMs, 10_000);
  assert.equal(w.bucketMs, 1000);
  w.record('failure', true);
  now = 9999;
  assert.equal(w.get('failure'), 1);
  now = 10_000;
  assert.equal(w.get('failure'), 0);
  w.record('success');
  w.reset();
  assert.deepEqual(w.counts(), { success: 0, failure: 0, timeout: 0, rejection: 0, slow: 0 });
});

test('rejects a bad shape by name', () => {
  assert.throws(() => new RollingWindow({ window: 0 }), /window must be > 0/);
  assert.throws(() => new RollingWindow({ buckets: 0 }), /buckets must be an integer/);
});
