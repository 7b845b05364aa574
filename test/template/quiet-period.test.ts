/** QuietPeriod (consul-template's wait min/max) on a fake clock; the blocking-query index rules. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { QuietPeriod, type Timers } from '../../src/template/quiet-period.ts';
import { indexMoved, nextIndex } from '../../src/cli/client/blocking-query.ts';

/** A fake clock: timers fire only when advanced. */
function fakeTimers(): Timers & { advance(ms: number): void } {
  let now = 0;
  let seq = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      pending.set(++seq, { at: now + ms, fn });
      return seq;
    },
    clearTimeout: (h) => void pending.delete(h as number),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const next = [...pending.entries()].sort((a, b) => a[1].at - b[1].at)[0];
        if (!next || next[1].at > end) break;
        pending.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = end;
    },
  };
}

test('fires min after the last change; a burst fires once', () => {
  const t = fakeTimers();
  const fired: number[] = [];
  const q = new QuietPeriod(100, undefined, () => fired.push(t.now()), t);
  q.poke();
  t.advance(50);
  q.poke();
  t.advance(99);
  assert.deepEqual(fired, []);
  t.advance(1);
  assert.deepEqual(fired, [150]);
  t.advance(1000);
  assert.deepEqual(fired, [150]);
});

test('a steady trickle fires at max (default 4 × min) after the first change', () => {
  const t = fakeTimers();
  const fired: number[] = [];
  const q = new QuietPeriod(100, undefined, () => fired.push(t.now()), t);
  for (let i = 0; i < 10; i++) {
    q.poke();
    t.advance(60);
  }
  assert.equal(fired[0], 400);
  q.close();
  t.advance(1000);
  assert.equal(fired.length, 1, 'close() cancels the pending fire');
});

test('property: every burst fires exactly once, within [min, max] of its first change', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 200 }),
      fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 30 }),
      (min, gaps) => {
        const t = fakeTimers();
        const fired: number[] = [];
        const q = new QuietPeriod(min, undefined, () => fired.push(t.now()), t);
        let burstStart = -1;
        const starts: number[] = [];
        for (const g of gaps) {
          if (burstStart < 0) {
            burstStart = t.now();
            starts.push(burstStart);
          }
          q.poke();
          const before = fired.length;
          t.advance(g);
          if (fired.length > before) burstStart = -1;
        }
        t.advance(10 * min);
        assert.equal(fired.length, starts.length);
        fired.forEach((f, i) => {
          assert.ok(
            f - starts[i] <= 4 * min,
            `fired ${f - starts[i]} ms after the burst began (max ${4 * min})`,
          );
          assert.ok(f - starts[i] >= Math.min(min, 4 * min));
        });
      },
    ),
  );
});

test('blocking-query index: reset when it goes backwards or is missing; only moved answers are handed on', () => {
  assert.equal(nextIndex(10, 12), 12);
  assert.equal(nextIndex(10, 3), 3, 'went backwards: restart from the answered index');
  assert.equal(nextIndex(10, undefined), 0);
  assert.equal(nextIndex(10, 0), 0);
  assert.equal(indexMoved(10, 10, false), false);
  assert.equal(indexMoved(10, 10, true), true);
  assert.equal(indexMoved(10, 3, false), true);
});
