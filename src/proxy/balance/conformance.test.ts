/** The conformance suite every balancer type runs (as hono's shared router cases). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BALANCER_TYPES, createBalancer, type BalancerType } from './balancer.ts';
import { EndpointState, isEligible, end, start } from './endpoint-state.ts';
import { endpoints, seeded, tally } from './test-helpers.ts';

const hashed = (t: BalancerType) => t === 'ringHash' || t === 'maglev';
/** Distinct keys for hash balancers so their picks spread; others ignore the key. */
const keyOf = (i: number) => `user-${i}`;
const now = () => 0;

for (const type of BALANCER_TYPES) {
  const spec = (extra: object = {}) => ({
    type,
    ...(hashed(type) ? { hashOn: { header: 'x-user' } } : {}),
    ...extra,
  });
  const make = (eps: EndpointState[], extra: object = {}, seed = 1) =>
    createBalancer(spec(extra), eps, { now, random: seeded(seed) });

  describe(`balancer conformance: ${type}`, () => {
    it('returns undefined for an empty set, and picks once endpoints arrive', () => {
      const lb = make([]);
      assert.equal(lb.pick(), undefined);
      assert.equal(lb.pick({ hashKey: 'k' }), undefined);
      lb.update(endpoints([1, 1]));
      assert.ok(lb.pick({ hashKey: 'k' }));
      lb.update([]);
      assert.equal(lb.pick({ hashKey: 'k' }), undefined);
    });

    it('picks only endpoints of the current set, with or without a hash key', () => {
      const eps = endpoints([1, 2, 3]);
      const lb = make(eps);
      const keys = new Set(eps.map((e) => e.key));
      for (let i = 0; i < 500; i++) {
        assert.ok(keys.has(lb.pick({ hashKey: keyOf(i) })!.key));
        assert.ok(keys.has(lb.pick()!.key));
      }
    });

    it('never picks an unhealthy or ejected endpoint while enough are eligible', () => {
      const eps = endpoints([1, 1, 1, 1, 1, 1]);
      eps[0].checkHealthy = false;
      eps[1].ejected = true;
      const critical = new EndpointState({ address: '10.0.0.3', port: 8080, health: 'critical' });
      const lb = make(eps);
      lb.update([eps[0], eps[1], critical, eps[3], eps[4], eps[5]]);
      // 3 of 6 eligible = 50%: not below the default threshold, so no panic.
      const counts = tally(lb, 3000, keyOf);
      assert.deepEqual([...counts.keys()].sort(), [eps[3].key, eps[4].key, eps[5].key].sort());
    });

    it('with panic disabled, picks the only eligible endpoint, and nothing when none is eligible', () => {
      const eps = endpoints([5, 1, 1, 1]);
      for (const e of eps.slice(0, 3)) e.ejected = true;
      const lb = make(eps, { panicThreshold: 0 });
      const counts = tally(lb, 1000, keyOf);
      assert.deepEqual([...counts.entries()], [[eps[3].key, 1000]]);
      eps[3].checkHealthy = false;
      assert.equal(lb.pick({ hashKey: 'a' }), undefined);
      assert.equal(lb.pick(), undefined);
    });

    it('panics below the threshold: balances over all endpoints, healthy or not', () => {
      const eps = endpoints([1, 1, 1, 1, 1]);
      for (const e of eps.slice(0, 3)) e.checkHealthy = false; // 2 of 5 = 40% < 50%
      const lb = make(eps);
      const counts = tally(lb, 5000, keyOf);
      assert.equal(counts.size, 5, `all five endpoints take traffic in panic, got ${[...counts.keys()]}`);
      for (const c of counts.values()) assert.ok(c > 500, `each gets a fair share in panic: ${[...counts]}`);
      // All unhealthy with the default threshold: still panics rather than failing.
      for (const e of eps) e.ejected = true;
      assert.ok(lb.pick({ hashKey: 'x' }));
      // A threshold of 30% accepts 2 of 5 (40%): back to healthy-only.
      const lb30 = make(endpoints([1, 1, 1, 1, 1]), { panicThreshold: 30 });
      for (const e of lb30.endpoints.slice(0, 3)) e.checkHealthy = false;
      const only = tally(lb30, 2000, keyOf);
      assert.deepEqual([...only.keys()].sort(), [lb30.endpoints[3].key, lb30.endpoints[4].key].sort());
    });

    it('update keeps the state of endpoints whose key stays and refreshes their config', () => {
      const lb = make(endpoints([1, 1, 1]));
      const [a, b] = lb.endpoints;
      start(a);
      start(a);
      b.ejected = true;
      b.checkHealthy = false;
      start(b);
      end(b, 250);
      const fresh = endpoints([7, 1, 1, 1]); // same first three keys, a new fourth; weights changed
      fresh.splice(2, 1); // drop the third
      lb.update(fresh);
      assert.equal(lb.endpoints.length, 3);
      assert.equal(lb.endpoints[0], a, 'same object kept for a key that stays');
      assert.equal(a.active, 2);
      assert.equal(a.weight, 7, 'config refreshed');
      assert.equal(lb.endpoints[1], b);
      assert.equal(b.ejected, true);
      assert.equal(b.checkHealthy, false);
      assert.equal(b.cost, 250);
      assert.equal(lb.endpoints[2], fresh[2]);
      // The removed endpoint is never picked; in-flight requests on old objects still end cleanly.
      const removed = '10.0.0.3:8080';
      for (let i = 0; i < 500; i++) assert.notEqual(lb.pick({ hashKey: keyOf(i) })!.key, removed);
      end(a);
      end(a);
      end(a);
      assert.equal(a.active, 0);
    });

    it('honours weights statistically', () => {
      const weights = [1, 2, 3, 4];
      const eps = endpoints(weights);
      const lb = make(eps, {}, 42);
      const n = 20_000;
      const counts = tally(lb, n, keyOf);
      // Hash tables approximate weights with a finite number of points; the rest are exact or random.
      const tolerance = hashed(type) ? 0.04 : 0.015;
      eps.forEach((ep, i) => {
        const share = (counts.get(ep.key) ?? 0) / n;
        assert.ok(
          Math.abs(share - weights[i] / 10) < tolerance,
          `${ep.key} weight ${weights[i]}: share ${share.toFixed(3)}, want ${weights[i] / 10}`,
        );
      });
    });

    it('without a hash key, still spreads over the candidates', () => {
      const eps = endpoints([1, 1, 1]);
      const lb = make(eps);
      const counts = tally(lb, 3000);
      assert.equal(counts.size, 3);
      for (const c of counts.values()) assert.ok(c > 700, `${[...counts]}`);
      assert.ok(eps.every(isEligible));
    });
  });
}
