import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer } from './balancer.ts';
import { start } from './endpoint-state.ts';
import { effectiveWeight } from './least-request.ts';
import { endpoints, seeded, tally } from './test-helpers.ts';

describe('least request', () => {
  it('prefers the endpoint with fewer active requests', () => {
    const lb = createBalancer({ type: 'leastRequest' }, endpoints([1, 1]), { random: seeded(1) });
    const [a, b] = lb.endpoints;
    start(a);
    start(a);
    assert.deepEqual([...tally(lb, 500).entries()], [[b.key, 500]]);
  });

  it('P2C: the busiest of several endpoints is never picked, the idle ones share', () => {
    const lb = createBalancer({ type: 'leastRequest' }, endpoints([1, 1, 1, 1]), { random: seeded(2) });
    const [busy] = lb.endpoints;
    for (let i = 0; i < 5; i++) start(busy);
    const counts = tally(lb, 3000);
    assert.equal(counts.get(busy.key), undefined);
    for (const c of counts.values()) assert.ok(c > 800, `${[...counts]}`);
  });

  it('follows work as it starts: sequential picks with start() spread evenly', () => {
    const lb = createBalancer({ type: 'leastRequest' }, endpoints([1, 1, 1]), { random: seeded(9) });
    for (let i = 0; i < 300; i++) start(lb.pick()!);
    const actives = lb.endpoints.map((e) => e.active);
    assert.ok(Math.max(...actives) - Math.min(...actives) <= 2, `actives ${actives}`);
  });

  it('unequal weights: share follows weight / (active + 1)^bias', () => {
    const lb = createBalancer({ type: 'leastRequest' }, endpoints([2, 1]), { random: seeded(4) });
    const [heavy, light] = lb.endpoints;
    for (let i = 0; i < 3; i++) start(heavy); // 2/4 = 0.5 against 1/1
    assert.equal(effectiveWeight(heavy, 1), 0.5);
    const counts = tally(lb, 9000);
    const share = (counts.get(light.key) ?? 0) / 9000;
    assert.ok(Math.abs(share - 2 / 3) < 0.02, `light share ${share}`);
    // bias 0 ignores activity: plain weights.
    const flat = createBalancer({ type: 'leastRequest', activeRequestBias: 0 }, endpoints([2, 1]), {
      random: seeded(5),
    });
    for (let i = 0; i < 3; i++) start(flat.endpoints[0]);
    const flatShare = (tally(flat, 9000).get(flat.endpoints[0].key) ?? 0) / 9000;
    assert.ok(Math.abs(flatShare - 2 / 3) < 0.02, `heavy share with bias 0: ${flatShare}`);
  });
});
