/**
 * fast-check over the balancer state machine: random sequences of endpoint-set updates,
 * health and ejection flips, request starts and ends, and picks, against every algorithm.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BALANCER_TYPES, createBalancer, type BalancerType } from './balancer.ts';
import { EndpointState, end, isEligible, start } from './endpoint-state.ts';
import { inPanic, seeded } from './test-helpers.ts';

/** A pool of 8 endpoint slots; an update picks a subset of it (weights drawn per update). */
const POOL = 8;
const make = (slot: number, weight: number, critical: boolean) =>
  new EndpointState({
    address: `10.1.0.${slot}`,
    port: 9000,
    weight,
    health: critical ? 'critical' : 'passing',
  });

const action = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('update' as const),
      slots: fc.subarray([0, 1, 2, 3, 4, 5, 6, 7]),
      weights: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: POOL, maxLength: POOL }),
      critical: fc.array(fc.boolean(), { minLength: POOL, maxLength: POOL }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('health' as const), i: fc.nat(), ok: fc.boolean() }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant('eject' as const), i: fc.nat(), on: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('start' as const), key: fc.nat(50) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('end' as const), i: fc.nat(), rtt: fc.nat(500) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('pick' as const), key: fc.option(fc.nat(50)) }), weight: 4 },
);

const hashed = (t: BalancerType) => t === 'ringHash' || t === 'maglev';

describe('balancer state machine (fast-check)', () => {
  for (const type of BALANCER_TYPES) {
    it(`${type}: invariants hold over random operation sequences`, () => {
      fc.assert(
        fc.property(
          fc.array(action, { maxLength: 60 }),
          fc.constantFrom(0, 50, 100),
          fc.integer(),
          (actions, panicThreshold, seed) => {
            let t = 0;
            const lb = createBalancer({ type, panicThreshold, hashOn: { header: 'x' } }, [], {
              now: () => t,
              random: seeded(seed),
            });
            const inflight: EndpointState[] = [];
            // Expected in-flight count per object, kept independently of the balancer.
            const expected = new Map<EndpointState, number>();
            const checkPick = (ep: EndpointState | undefined) => {
              const eps = lb.endpoints;
              const eligible = eps.filter(isEligible);
              if (eps.length === 0 || (eligible.length === 0 && panicThreshold === 0)) {
                assert.equal(ep, undefined);
                return;
              }
              assert.ok(ep !== undefined, 'something to pick');
              assert.ok(eps.includes(ep), 'pick is a current endpoint object');
              if (!inPanic(eps, panicThreshold)) assert.ok(isEligible(ep), `picked ineligible ${ep.key}`);
            };
            for (const a of actions) {
              t += 7;
              const eps = lb.endpoints;
              switch (a.kind) {
                case 'update':
                  lb.update(a.slots.map((s) => make(s, a.weights[s], a.critical[s])));
                  break;
                case 'health':
                  if (eps.length) eps[a.i % eps.length].checkHealthy = a.ok;
                  break;
                case 'eject':
                  if (eps.length) eps[a.i % eps.length].ejected = a.on;
                  break;
                case 'start': {
                  const ep = lb.pick({ hashKey: `k${a.key}` });
                  checkPick(ep);
                  if (ep) {
                    start(ep);
                    inflight.push(ep);
                    expected.set(ep, (expected.get(ep) ?? 0) + 1);
                  }
                  break;
                }
                case 'end':
                  if (inflight.length) {
                    const [ep] = inflight.splice(a.i % inflight.length, 1);
                    end(ep, a.rtt);
                    expected.set(ep, expected.get(ep)! - 1);
                    // Ending more than was started must not drive the count negative.
                    end(new EndpointState({ address: 'stray', port: 1 }));
                  }
                  break;
                case 'pick': {
                  const hashKey = a.key === null ? undefined : `k${a.key}`;
                  const ep = lb.pick({ hashKey });
                  checkPick(ep);
                  if (hashed(type) && hashKey !== undefined)
                    assert.equal(lb.pick({ hashKey }), ep, 'same key, unchanged set: same endpoint');
                  break;
                }
              }
              for (const [ep, n] of expected) {
                assert.ok(ep.active >= 0);
                assert.equal(ep.active, n, `${ep.key} active count`);
              }
              for (const ep of lb.endpoints) assert.ok(ep.active >= 0);
            }
          },
        ),
        { numRuns: hashed(type) ? 60 : 200 },
      );
    });
  }
});

/** Owner of each key, by endpoint key. */
function owners(type: BalancerType, eps: EndpointState[], keys: readonly string[]): string[] {
  const lb = createBalancer({ type, hashOn: { header: 'x' } }, eps, { now: () => 0, random: seeded(1) });
  return keys.map((k) => lb.pick({ hashKey: k })!.key);
}

const KEYS = Array.from({ length: 2000 }, (_, i) => `session-${i}`);

describe('consistent hashing: minimal disruption (fast-check)', () => {
  for (const type of ['ringHash', 'maglev'] as const) {
    it(`${type}: removing one endpoint moves its keys and few others`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 3, max: 16 }), fc.nat(), (n, r) => {
          const all = Array.from({ length: n }, (_, i) => make(i + 10, 1, false));
          const removed = r % n;
          const before = owners(type, all, KEYS);
          const after = owners(
            type,
            all.filter((_, i) => i !== removed),
            KEYS,
          );
          let others = 0;
          for (let i = 0; i < KEYS.length; i++)
            if (before[i] !== all[removed].key && after[i] !== before[i]) others++;
          // A ring moves nothing else; Maglev's table shifts a few slots (up to ~3% measured).
          const bound = type === 'ringHash' ? 0 : 0.05 * KEYS.length;
          assert.ok(others <= bound, `${others} keys of surviving endpoints moved (n=${n})`);
          assert.ok(after.every((k) => k !== all[removed].key));
        }),
        { numRuns: 15 },
      );
    });

    it(`${type}: an endpoint leaving the candidate set moves only its own keys`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 2, max: 12 }), fc.nat(), (n, r) => {
          const eps = Array.from({ length: n }, (_, i) => make(i + 10, 1 + (i % 3), false));
          const lb = createBalancer({ type, hashOn: { header: 'x' }, panicThreshold: 0 }, eps, {
            random: seeded(1),
          });
          const before = KEYS.map((k) => lb.pick({ hashKey: k })!);
          const out = lb.endpoints[r % n];
          out.ejected = true;
          const after = KEYS.map((k) => lb.pick({ hashKey: k })!);
          for (let i = 0; i < KEYS.length; i++) {
            assert.notEqual(after[i], out);
            if (before[i] !== out) assert.equal(after[i], before[i]);
          }
          // And they come back when it returns.
          out.ejected = false;
          assert.deepEqual(
            KEYS.map((k) => lb.pick({ hashKey: k })!),
            before,
          );
        }),
        { numRuns: 10 },
      );
    });
  }
});
