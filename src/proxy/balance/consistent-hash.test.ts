import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer } from './balancer.ts';
import { MAGLEV_TABLE_SIZE, buildMaglevTable } from './maglev.ts';
import { POINTS_PER_WEIGHT, buildRing, ringLookup } from './ring-hash.ts';
import { endpoints, seeded } from './test-helpers.ts';

describe('maglev table', () => {
  it('fills all 65537 slots, in proportion to weight', () => {
    const table = buildMaglevTable(endpoints([1, 2, 3]));
    assert.equal(table.length, MAGLEV_TABLE_SIZE);
    const counts = [0, 0, 0];
    for (const owner of table) counts[owner]++;
    assert.equal(
      counts.reduce((a, b) => a + b),
      MAGLEV_TABLE_SIZE,
    );
    counts.forEach((c, i) => assert.ok(Math.abs(c / MAGLEV_TABLE_SIZE - (i + 1) / 6) < 0.001, `${counts}`));
  });

  it('gives even a very light endpoint a slot', () => {
    const table = buildMaglevTable(endpoints([1_000_000, 1]));
    assert.ok(table.includes(1));
  });

  it('is the same table whatever the order of the endpoints', () => {
    const eps = endpoints([1, 1, 1, 1]);
    const a = buildMaglevTable(eps);
    const b = buildMaglevTable([...eps].reverse());
    for (let s = 0; s < a.length; s += 97) assert.equal(eps[a[s]].key, [...eps].reverse()[b[s]].key);
  });

  it('a key keeps its endpoint across rebuilds that keep the set', () => {
    const lb = createBalancer({ type: 'maglev', hashOn: { cookie: 's' } }, endpoints([1, 1, 1]), {
      random: seeded(1),
    });
    const before = lb.pick({ hashKey: 'alice' });
    lb.update(endpoints([1, 1, 1]));
    assert.equal(lb.pick({ hashKey: 'alice' }), before);
  });
});

describe('hash ring', () => {
  it('places points per weight and finds the first point clockwise', () => {
    const ring = buildRing(endpoints([1, 2]));
    assert.equal(ring.hashes.length, 3 * POINTS_PER_WEIGHT);
    for (let i = 1; i < ring.hashes.length; i++) assert.ok(ring.hashes[i - 1] <= ring.hashes[i]);
    const owned = [0, 0];
    for (const o of ring.owners) owned[o]++;
    assert.deepEqual(owned, [POINTS_PER_WEIGHT, 2 * POINTS_PER_WEIGHT]);
    assert.equal(ringLookup(ring, 0), 0);
    assert.equal(ringLookup(ring, ring.hashes[5]), 5);
    assert.equal(ringLookup(ring, ring.hashes[5] + 1), 6);
    assert.equal(
      ringLookup(ring, 2 ** 32 - 1),
      ring.hashes.at(-1) === 2 ** 32 - 1 ? ring.hashes.length - 1 : 0,
    );
  });

  it('stays bounded for extreme weight ratios', () => {
    const ring = buildRing(endpoints([1_000_000, 1, 3]));
    assert.ok(ring.hashes.length <= (1 << 20) + 3);
    assert.ok(ring.owners.includes(1));
  });
});
