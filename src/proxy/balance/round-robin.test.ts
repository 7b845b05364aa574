import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer } from './balancer.ts';
import { endpoints } from './test-helpers.ts';

describe('smooth weighted round robin', () => {
  it('interleaves by weight like nginx: 5,1,1 gives a a b a c a a', () => {
    const lb = createBalancer({ type: 'roundRobin' }, endpoints([5, 1, 1]));
    const name = new Map(lb.endpoints.map((e, i) => [e, 'abc'[i]]));
    const seq = Array.from({ length: 14 }, () => name.get(lb.pick()!)).join('');
    assert.equal(seq, 'aabacaa'.repeat(2));
  });

  it('skips endpoints outside the candidate set and keeps cycling over the rest', () => {
    const lb = createBalancer({ type: 'roundRobin' }, endpoints([1, 1, 1]));
    lb.endpoints[1].ejected = true;
    const seq = Array.from({ length: 6 }, () => lb.pick()!.address);
    assert.deepEqual(seq, ['10.0.0.1', '10.0.0.3', '10.0.0.1', '10.0.0.3', '10.0.0.1', '10.0.0.3']);
  });
});
