import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RetryBudget } from './retry-budget.ts';

test('retries are capped at percent of requests plus the per-second reserve', () => {
  let t = 0;
  const b = new RetryBudget({ percent: 20, minPerSecond: 1, window: 10_000 }, () => t);
  for (let i = 0; i < 100; i++) b.deposit();
  let allowed = 0;
  while (b.tryWithdraw() && allowed < 1000) allowed++;
  assert.equal(allowed, 20 + 10); // 20% of 100, plus 1/s × 10 s
  t = 5000;
  assert.equal(b.tryWithdraw(), false, 'still inside the window');
  t = 10_500; // everything slid out
  assert.equal(b.available, 10);
});

test('property: over any sequence, retries in any window ≤ percent·requests + reserve', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ dt: fc.integer({ min: 0, max: 400 }), requests: fc.nat(5), retries: fc.nat(5) }), {
        maxLength: 200,
      }),
      (steps) => {
        let t = 0;
        const window = 1000;
        const b = new RetryBudget({ percent: 20, minPerSecond: 2, window }, () => t);
        const log: Array<{ t: number; kind: 'q' | 'r' }> = [];
        for (const s of steps) {
          t += s.dt;
          for (let i = 0; i < s.requests; i++) {
            b.deposit();
            log.push({ t, kind: 'q' });
          }
          let took = 0;
          for (let i = 0; i < s.retries; i++)
            if (b.tryWithdraw()) {
              took++;
              log.push({ t, kind: 'r' });
            }
          if (took === 0) continue; // checked when retries are taken; old ones cannot be undone
          // The window slides in steps of window/10: it holds the last 10 such buckets.
          const bucket = (x: number) => Math.floor(x / (window / 10));
          const inWindow = (e: { t: number }) => bucket(e.t) > bucket(t) - 10;
          const r = log.filter((e) => e.kind === 'r' && inWindow(e)).length;
          const q = log.filter((e) => e.kind === 'q' && inWindow(e)).length;
          assert.ok(r <= q * 0.2 + 2 * (window / 1000), `${r} retries for ${q} requests at t=${t}`);
        }
      },
    ),
    { numRuns: 200 },
  );
});
