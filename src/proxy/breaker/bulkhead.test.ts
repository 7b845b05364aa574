import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bulkhead, RetryLimiter, bulkheadFromSpec } from './bulkhead.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';

test('defaults are Envoy’s: 1024 concurrent, 1024 pending, 3 retries', () => {
  const { bulkhead, retries } = bulkheadFromSpec(undefined, 'svc');
  assert.equal(bulkhead.maxRequests, 1024);
  assert.equal(bulkhead.maxPending, 1024);
  assert.equal(retries.maxRetries, 3);
  const b2 = bulkheadFromSpec({ maxRequests: 7, maxPendingRequests: 0, maxRetries: 1 }, 'svc');
  assert.equal(b2.bulkhead.maxRequests, 7);
  assert.equal(b2.bulkhead.maxPending, 0);
  assert.equal(b2.retries.maxRetries, 1);
});

test('FIFO hand-off: a released slot goes to the oldest waiter, newcomers cannot overtake', async () => {
  const b = new Bulkhead({ maxRequests: 1, maxPending: 2 });
  const never = new AbortController().signal;
  assert.ok(b.tryAcquire());
  const order: number[] = [];
  const w1 = b.enqueue(never)!.then(() => order.push(1));
  const w2 = b.enqueue(never)!.then(() => order.push(2));
  assert.equal(b.enqueue(never), undefined, 'queue full');
  assert.equal(b.pending, 2);
  b.release();
  assert.equal(b.tryAcquire(), false, 'a newcomer does not jump the queue');
  await w1;
  b.release();
  await w2;
  assert.deepEqual(order, [1, 2]);
  assert.equal(b.active, 1);
  b.release();
  assert.equal(b.active, 0);
  assert.equal(b.pending, 0);
});

test('a waiter fails when its signal aborts or its deadline passes, and leaves the queue', async () => {
  const b = new Bulkhead({ maxRequests: 1, maxPending: 4, service: 'reviews' });
  assert.ok(b.tryAcquire());
  const ac = new AbortController();
  const aborted = b.enqueue(ac.signal)!;
  const late = b.enqueue(new AbortController().signal, performance.now() + 20)!;
  const kept = b.enqueue(new AbortController().signal)!;
  ac.abort(new Error('client gone'));
  await assert.rejects(aborted, /client gone/);
  await assert.rejects(late, (e: unknown) => e instanceof HexmeshError && e.code === 'HEXMESH_ERR_TIMEOUT');
  assert.equal(b.pending, 1);
  b.release();
  await kept;
  assert.equal(b.active, 1);
  assert.equal(b.pending, 0);
  await assert.rejects(b.enqueue(ac.signal)!, /client gone/, 'already aborted');
  await assert.rejects(b.enqueue(new AbortController().signal, performance.now() - 1)!, /deadline/);
});

test('close fails every waiter with draining and refuses new calls', async () => {
  const b = new Bulkhead({ maxRequests: 1, maxPending: 2 });
  assert.ok(b.tryAcquire());
  const w = b.enqueue(new AbortController().signal)!;
  b.close();
  b.close();
  await assert.rejects(w, (e: unknown) => e instanceof HexmeshError && e.code === 'HEXMESH_ERR_DRAINING');
  assert.equal(b.tryAcquire(), false);
});

test('property: active never exceeds max, pending never exceeds max, slots are conserved', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 0, max: 4 }),
      fc.array(fc.constantFrom('acquire', 'release', 'abort'), { maxLength: 60 }),
      async (maxRequests, maxPending, ops) => {
        const b = new Bulkhead({ maxRequests, maxPending });
        let held = 0;
        const waiting: AbortController[] = [];
        for (const op of ops) {
          if (op === 'acquire') {
            if (b.tryAcquire()) held++;
            else {
              const ac = new AbortController();
              const p = b.enqueue(ac.signal);
              if (p) {
                waiting.push(ac);
                p.then(
                  () => {
                    held++;
                    waiting.splice(waiting.indexOf(ac), 1);
                  },
                  () => {},
                );
              }
            }
          } else if (op === 'release' && held > 0) {
            held--;
            b.release();
          } else if (op === 'abort' && waiting.length > 0) {
            waiting.shift()!.abort();
          }
          await Promise.resolve();
          await Promise.resolve();
          assert.ok(b.active <= maxRequests);
          assert.ok(b.pending <= maxPending);
          assert.equal(b.active, held);
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('RetryLimiter caps concurrent retries', () => {
  const r = new RetryLimiter(2);
  assert.ok(r.tryAcquire());
  assert.ok(r.tryAcquire());
  assert.equal(r.tryAcquire(), false);
  r.release();
  assert.ok(r.tryAcquire());
  assert.equal(new RetryLimiter(0).tryAcquire(), false);
  assert.throws(() => new RetryLimiter(-1), /maxRetries/);
  assert.throws(() => new Bulkhead({ maxRequests: 0 }), /maxRequests/);
});
