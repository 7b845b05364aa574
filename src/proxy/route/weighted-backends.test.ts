import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WeightedBackends, type BackendTarget } from './weighted-backends.ts';

const b = (name: string, weight: number): BackendTarget => ({ name, namespace: 'prod', port: 9080, weight });

/** Deterministic PRNG (mulberry32) so share checks cannot flake. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('WeightedBackends', () => {
  it('shares follow weight / sum within tolerance', () => {
    const wb = new WeightedBackends([b('v1', 70), b('v2', 20), b('v3', 10)]);
    const counts = new Map<string, number>();
    const random = seeded(42);
    const N = 20_000;
    for (let i = 0; i < N; i++) {
      const name = wb.pick(random)!.name;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    for (const [name, share] of [
      ['v1', 0.7],
      ['v2', 0.2],
      ['v3', 0.1],
    ] as const)
      assert.ok(
        Math.abs(counts.get(name)! / N - share) < 0.02,
        `${name}: ${counts.get(name)! / N} vs ${share}`,
      );
  });

  it('maps random intervals exactly onto cumulative weights', () => {
    const wb = new WeightedBackends([b('a', 1), b('b', 3)]);
    assert.equal(wb.pick(() => 0)!.name, 'a');
    assert.equal(wb.pick(() => 0.2499)!.name, 'a');
    assert.equal(wb.pick(() => 0.25)!.name, 'b');
    assert.equal(wb.pick(() => 0.9999)!.name, 'b');
    assert.equal(wb.pick(() => 1)!.name, 'b', 'a random() of exactly 1 does not fall off the end');
  });

  it('never picks a weight-0 backend (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 6 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (weights, r) => {
          const wb = new WeightedBackends(weights.map((w, i) => b(`s${i}`, w)));
          const got = wb.pick(() => r);
          if (weights.every((w) => w === 0)) assert.equal(got, undefined);
          else assert.ok(got && got.weight > 0);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('all weights 0 or no backends: empty, pick returns undefined (caller answers 500)', () => {
    for (const wb of [new WeightedBackends([]), new WeightedBackends([b('a', 0), b('b', 0)])]) {
      assert.equal(wb.empty, true);
      assert.equal(wb.pick(), undefined);
    }
    const one = new WeightedBackends([b('z', 0), b('a', 5)]);
    assert.equal(one.empty, false);
    assert.equal(one.pick(() => 0)!.name, 'a');
    assert.equal(one.all.length, 2);
  });
});
