import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Service } from '../core/dispatch.ts';
import { fakeRequest, fakeResponse } from '../retry/test-support.ts';
import { rateLimitLayer } from './rate-limit-layer.ts';
import { TokenBucket } from './token-bucket.ts';

test('property: admitted ≤ maxTokens + fills · tokensPerFill over any (advance, take) sequence', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 1000 }),
      fc.array(
        fc.oneof(
          fc.record({ advance: fc.integer({ min: 0, max: 3000 }) }),
          fc.record({ take: fc.integer({ min: 1, max: 10 }) }),
        ),
        { maxLength: 200 },
      ),
      (maxTokens, tokensPerFill, fillInterval, ops) => {
        let t = 0;
        const bucket = new TokenBucket({ maxTokens, tokensPerFill, fillInterval }, () => t);
        let admitted = 0;
        for (const op of ops) {
          if ('advance' in op) t += op.advance;
          else for (let i = 0; i < op.take; i++) if (bucket.tryTake()) admitted++;
          const fills = Math.floor(t / fillInterval);
          assert.ok(admitted <= maxTokens + fills * tokensPerFill, `${admitted} admitted at t=${t}`);
          assert.ok(bucket.available >= 0 && bucket.available <= maxTokens);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('a full bucket admits maxTokens at once, then refills lazily by whole intervals', () => {
  let t = 0;
  const b = new TokenBucket({ maxTokens: 3, tokensPerFill: 2, fillInterval: 100 }, () => t);
  assert.deepEqual([b.tryTake(), b.tryTake(), b.tryTake(), b.tryTake()], [true, true, true, false]);
  t = 99;
  assert.equal(b.tryTake(), false);
  t = 100;
  assert.deepEqual([b.tryTake(), b.tryTake(), b.tryTake()], [true, true, false]);
  t = 10_000; // a long idle period refills to the cap, no more
  assert.equal(b.available, 3);
});

test('the rate-limit layer rejects over budget with HEXMESH_ERR_RATE_LIMITED', async () => {
  let t = 0;
  let calls = 0;
  const inner: Service = async () => (calls++, fakeResponse(200));
  const svc = rateLimitLayer({ maxTokens: 2, tokensPerFill: 2, fillInterval: 1000 }, { now: () => t })(inner);
  assert.equal((await svc(fakeRequest())).status, 200);
  assert.equal((await svc(fakeRequest())).status, 200);
  await assert.rejects(svc(fakeRequest()), (err: unknown) => {
    assert.ok(err instanceof HexmeshError);
    assert.equal(err.code, 'HEXMESH_ERR_RATE_LIMITED');
    assert.equal(err.message, 'rate limited: 2 requests per 1s for reviews');
    return true;
  });
  t = 1000;
  assert.equal((await svc(fakeRequest())).status, 200);
  assert.equal(calls, 3);
  assert.equal(rateLimitLayer(null)(inner), inner);
});
