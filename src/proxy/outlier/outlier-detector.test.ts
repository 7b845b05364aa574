import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  OUTLIER_DEFAULTS,
  OutlierDetector,
  maxEjectable,
  type EjectionReason,
  type OutlierConfig,
  type OutlierTarget,
} from './outlier-detector.ts';

function hosts(n: number): OutlierTarget[] {
  return Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + 1}:8080`, ejected: false }));
}

function detector(config: Partial<OutlierConfig> = {}, clock = { t: 0 }) {
  const events: string[] = [];
  const d = new OutlierDetector(
    { ...OUTLIER_DEFAULTS, ...config },
    {
      now: () => clock.t,
      autoSweep: false,
      onEject: (k: string, r: EjectionReason) => events.push(`eject ${k} ${r}`),
      onReturn: (k: string) => events.push(`return ${k}`),
    },
  );
  return { d, clock, events };
}

test('5 consecutive 5xx eject the endpoint', () => {
  // 10 hosts at 10%: one may be ejected.
  const { d, events } = detector();
  const eps = hosts(10);
  d.setEndpoints(eps);
  for (let i = 0; i < 4; i++) d.record(eps[0], '5xx');
  assert.equal(eps[0].ejected, false);
  d.record(eps[0], '5xx');
  assert.equal(eps[0].ejected, true);
  assert.deepEqual(events, ['eject 10.0.0.1:8080 consecutive-5xx']);
  assert.equal(d.ejectionsTotal['consecutive-5xx'], 1);
  d.close();
});

test('an interleaved success resets the consecutive count', () => {
  const { d } = detector();
  const eps = hosts(10);
  d.setEndpoints(eps);
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 4; i++) d.record(eps[0], '5xx');
    d.record(eps[0], 'success');
  }
  assert.equal(eps[0].ejected, false);
  assert.equal(d.ejected, 0);
  d.close();
});

test('gateway errors eject by their own count and also count as 5xx', () => {
  const { d } = detector({ consecutive5xx: 5, consecutiveGatewayErrors: 3 });
  const eps = hosts(10);
  d.setEndpoints(eps);
  for (let i = 0; i < 3; i++) d.record(eps[0], 'gateway-error');
  assert.equal(eps[0].ejected, true);
  assert.equal(d.ejectionsTotal['consecutive-gateway-error'], 1);

  // Mixed: 3 x 5xx then 2 gateway errors reach 5 consecutive 5xx.
  const { d: d2 } = detector({ consecutiveGatewayErrors: 0 });
  const eps2 = hosts(10);
  d2.setEndpoints(eps2);
  for (let i = 0; i < 3; i++) d2.record(eps2[1], '5xx');
  d2.record(eps2[1], 'gateway-error');
  assert.equal(eps2[1].ejected, false);
  d2.record(eps2[1], 'gateway-error');
  assert.equal(eps2[1].ejected, true);
  assert.equal(d2.ejectionsTotal['consecutive-5xx'], 1);
  d.close();
  d2.close();
});

test('success-rate outlier among 6 hosts is ejected, normal ones are not', () => {
  const { d, events } = detector({
    consecutive5xx: 0,
    consecutiveGatewayErrors: 0,
    maxEjectionPercent: 50,
    successRate: { minHosts: 5, requestVolume: 100, stdevFactor: 1.9 },
  });
  const eps = hosts(6);
  d.setEndpoints(eps);
  // Five hosts fail 1-3% of requests, one fails 40%.
  const failEvery = [50, 40, 60, 33, 100, 0];
  for (let r = 0; r < 200; r++) {
    for (let i = 0; i < 5; i++) d.record(eps[i], r % failEvery[i] === 0 ? '5xx' : 'success');
    d.record(eps[5], r % 5 < 2 ? '5xx' : 'success');
  }
  assert.equal(d.ejected, 0, 'nothing ejected before the interval ends');
  d.sweep();
  assert.deepEqual(
    eps.map((e) => e.ejected),
    [false, false, false, false, false, true],
  );
  assert.deepEqual(events, ['eject 10.0.0.6:8080 success-rate']);
  assert.equal(d.ejectionsTotal['success-rate'], 1);
  d.close();
});

test('success-rate ejection needs minHosts hosts with requestVolume requests', () => {
  const { d } = detector({ consecutive5xx: 0, consecutiveGatewayErrors: 0, maxEjectionPercent: 50 });
  const eps = hosts(6);
  d.setEndpoints(eps);
  // Only four hosts reach 100 requests: below minHosts (5), no verdict.
  for (let r = 0; r < 100; r++) {
    for (let i = 0; i < 3; i++) d.record(eps[i], 'success');
    d.record(eps[3], r % 2 ? '5xx' : 'success');
  }
  d.sweep();
  assert.equal(d.ejected, 0);
  d.close();
});

test('probation: after the ejection time the endpoint returns; first result decides', () => {
  const { d, clock, events } = detector();
  const eps = hosts(10);
  d.setEndpoints(eps);
  for (let i = 0; i < 5; i++) d.record(eps[0], '5xx');
  assert.equal(eps[0].ejected, true);

  clock.t = 29_999;
  d.sweep();
  assert.equal(eps[0].ejected, true, 'still ejected before baseEjectionTime');
  clock.t = 30_000;
  d.sweep();
  assert.equal(eps[0].ejected, false);
  assert.equal(d.phase(eps[0].key), 'probation');

  // One failure on probation ejects again, now for 2 × 30 s.
  d.record(eps[0], '5xx');
  assert.equal(eps[0].ejected, true);
  clock.t = 30_000 + 59_999;
  d.sweep();
  assert.equal(eps[0].ejected, true);
  clock.t = 90_000;
  d.sweep();
  assert.equal(eps[0].ejected, false);

  d.record(eps[0], 'success');
  assert.equal(d.phase(eps[0].key), 'active');
  // Fully back: it takes five fresh failures to eject again.
  for (let i = 0; i < 4; i++) d.record(eps[0], '5xx');
  assert.equal(eps[0].ejected, false);
  assert.deepEqual(events, [
    'eject 10.0.0.1:8080 consecutive-5xx',
    'return 10.0.0.1:8080',
    'eject 10.0.0.1:8080 consecutive-5xx',
    'return 10.0.0.1:8080',
  ]);
  d.close();
});

test('max ejection percent: at least one host, never more than the cap', () => {
  assert.equal(maxEjectable(0, 10), 0);
  assert.equal(maxEjectable(3, 10), 1);
  assert.equal(maxEjectable(3, 0), 1);
  assert.equal(maxEjectable(20, 10), 2);
  const { d } = detector();
  const eps = hosts(5);
  d.setEndpoints(eps);
  for (const ep of eps) for (let i = 0; i < 5; i++) d.record(ep, '5xx');
  assert.equal(d.ejected, 1);
  assert.equal(eps.filter((e) => e.ejected).length, 1);
  d.close();
});

test('setEndpoints keeps state by key and copies it onto new objects', () => {
  const { d } = detector();
  const eps = hosts(10);
  d.setEndpoints(eps);
  for (let i = 0; i < 5; i++) d.record(eps[0], '5xx');
  const fresh = hosts(10);
  d.setEndpoints(fresh);
  assert.equal(fresh[0].ejected, true);
  assert.equal(d.ejected, 1);
  // Removing the ejected host frees its slot.
  d.setEndpoints(fresh.slice(1));
  assert.equal(d.ejected, 0);
  d.close();
});

test('close() stops the real sweep timer and ignores later results', async () => {
  const d = new OutlierDetector({ ...OUTLIER_DEFAULTS, interval: 20 });
  const eps = hosts(10);
  d.setEndpoints(eps);
  d.close();
  d.close();
  for (let i = 0; i < 5; i++) d.record(eps[0], '5xx');
  assert.equal(eps[0].ejected, false);
});

test('the real sweep timer returns an ejected host', async () => {
  const d = new OutlierDetector({
    ...OUTLIER_DEFAULTS,
    interval: 20,
    baseEjectionTime: 30,
    maxEjectionTime: 30,
  });
  const eps = hosts(10);
  d.setEndpoints(eps);
  for (let i = 0; i < 5; i++) d.record(eps[0], '5xx');
  assert.equal(eps[0].ejected, true);
  const deadline = Date.now() + 5000;
  while (eps[0].ejected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(eps[0].ejected, false);
  d.close();
});

// ---------- property test: the detector as a state machine against a model ----------

type Cmd =
  | { kind: 'record'; host: number; outcome: 'success' | '5xx' | 'gateway-error' }
  | { kind: 'advance'; ms: number };

test('property: cap on ejections, returns after ejection time, growing capped ejection time', () => {
  const cmd: fc.Arbitrary<Cmd> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('record' as const),
        host: fc.nat(19),
        outcome: fc.constantFrom('success' as const, '5xx' as const, 'gateway-error' as const),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('advance' as const),
        ms: fc.integer({ min: 1, max: 40_000 }),
      }),
    },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 0, max: 100 }),
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 8 }),
      fc.array(cmd, { maxLength: 300 }),
      (n, pct, threshold, capFactor, cmds) => {
        const base = 1000;
        const max = base * capFactor;
        const clock = { t: 0 };
        const ejectedAt = new Map<string, number>();
        const d = new OutlierDetector(
          {
            ...OUTLIER_DEFAULTS,
            consecutive5xx: threshold,
            consecutiveGatewayErrors: threshold,
            interval: 500,
            baseEjectionTime: base,
            maxEjectionTime: max,
            maxEjectionPercent: pct,
            successRate: { minHosts: 3, requestVolume: 5, stdevFactor: 1 },
          },
          {
            now: () => clock.t,
            autoSweep: false,
            onEject: (k) => ejectedAt.set(k, clock.t),
            onReturn: (k) => {
              const duration = clock.t - ejectedAt.get(k)!;
              // Returned no earlier than base and no later than one sweep after the cap.
              assert.ok(duration >= base, `returned after ${duration} ms < base ${base}`);
              assert.ok(duration <= max + 500, `returned after ${duration} ms > max ${max} + interval`);
              ejectedAt.delete(k);
            },
          },
        );
        const eps = hosts(n);
        d.setEndpoints(eps);
        // Independent of maxEjectable(): Envoy's rule written out.
        const cap = Math.max(1, Math.floor((pct * n) / 100));
        let nextSweep = 500;
        for (const c of cmds) {
          if (c.kind === 'record') {
            if (c.host < n) d.record(eps[c.host], c.outcome);
          } else {
            const end = clock.t + c.ms;
            while (nextSweep <= end) {
              clock.t = nextSweep;
              d.sweep();
              nextSweep += 500;
              // Every host whose ejection time is over has returned at this sweep.
              for (const [k, at] of ejectedAt) assert.ok(clock.t - at < max, `${k} overstayed`);
            }
            clock.t = end;
          }
          const nEjected = eps.filter((e) => e.ejected).length;
          assert.ok(nEjected <= cap, `${nEjected} ejected > cap ${cap}`);
          assert.equal(nEjected, d.ejected);
          assert.equal(nEjected, ejectedAt.size);
        }
        d.close();
      },
    ),
    { numRuns: 200 },
  );
});

test('property: ejection time grows with each re-ejection on probation and is capped', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 12 }), (capFactor, rounds) => {
      const base = 1000;
      const max = base * capFactor;
      const { d, clock } = detector({ baseEjectionTime: base, maxEjectionTime: max, interval: 100 });
      const eps = hosts(10);
      d.setEndpoints(eps);
      for (let i = 0; i < 5; i++) d.record(eps[0], '5xx');
      for (let k = 1; k <= rounds; k++) {
        const expected = Math.min(base * k, max);
        const start = clock.t;
        clock.t = start + expected - 1;
        d.sweep();
        assert.equal(eps[0].ejected, true, `round ${k}: back before ${expected} ms`);
        clock.t = start + expected;
        d.sweep();
        assert.equal(eps[0].ejected, false, `round ${k}: not back after ${expected} ms`);
        d.record(eps[0], 'gateway-error');
        assert.equal(eps[0].ejected, true);
      }
      d.close();
    }),
    { numRuns: 100 },
  );
});
