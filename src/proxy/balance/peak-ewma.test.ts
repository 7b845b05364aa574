import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer, type BalancerType } from './balancer.ts';
import { EndpointState, decayedCost, end, recordRtt, start } from './endpoint-state.ts';
import { peakEwmaLoad } from './peak-ewma.ts';
import { seeded } from './test-helpers.ts';

/** A clock the test moves by hand. */
function fakeClock(startAt = 1000) {
  const clock = { t: startAt, now: () => clock.t };
  return clock;
}

describe('peak-EWMA estimate', () => {
  it('an unmeasured endpoint costs the default RTT (30 ms unless configured)', () => {
    const clock = fakeClock();
    const lb = createBalancer(undefined, [new EndpointState({ address: 'a', port: 1 })], { now: clock.now });
    assert.equal(lb.endpoints[0].cost, 30);
    const lb2 = createBalancer({ defaultRtt: 80 }, [new EndpointState({ address: 'a', port: 1 })], {
      now: clock.now,
    });
    assert.equal(peakEwmaLoad(lb2.endpoints[0], clock.t), 80);
  });

  it('peak rule: a sample above the estimate replaces it at once', () => {
    const clock = fakeClock();
    const [ep] = createBalancer(undefined, [new EndpointState({ address: 'a', port: 1 })], {
      now: clock.now,
    }).endpoints;
    recordRtt(ep, 500);
    assert.equal(ep.cost, 500);
    clock.t += 1; // even a moment later, a higher sample is taken as is
    recordRtt(ep, 900);
    assert.equal(ep.cost, 900);
  });

  it('a lower sample pulls the estimate down with w = exp(-Δt/τ), τ = 10 s', () => {
    const clock = fakeClock();
    const [ep] = createBalancer(undefined, [new EndpointState({ address: 'a', port: 1 })], {
      now: clock.now,
    }).endpoints;
    recordRtt(ep, 100);
    clock.t += 10_000;
    recordRtt(ep, 10);
    const w = Math.exp(-1);
    assert.ok(Math.abs(ep.cost - (100 * w + 10 * (1 - w))) < 1e-9, `cost ${ep.cost}`);
    // A sample at the same instant has w = 1: no change for a lower sample.
    const before = ep.cost;
    recordRtt(ep, 1);
    assert.equal(ep.cost, before);
  });

  it('the estimate decays while idle so a once-slow endpoint is probed again', () => {
    const clock = fakeClock();
    const [ep] = createBalancer(undefined, [new EndpointState({ address: 'a', port: 1 })], {
      now: clock.now,
    }).endpoints;
    recordRtt(ep, 1000);
    clock.t += 20_000;
    assert.ok(Math.abs(decayedCost(ep, clock.t) - 1000 * Math.exp(-2)) < 1e-9);
  });

  it('load is cost × (pending + 1)', () => {
    const clock = fakeClock();
    const [ep] = createBalancer(undefined, [new EndpointState({ address: 'a', port: 1 })], {
      now: clock.now,
    }).endpoints;
    start(ep);
    start(ep);
    assert.equal(peakEwmaLoad(ep, clock.t), 30 * 3);
    end(ep, 40); // peak: 40 > 30
    assert.equal(peakEwmaLoad(ep, clock.t), 40 * 2);
  });
});

/**
 * Discrete-event simulation on a fake clock: one request per ms, each endpoint answers in
 * its fixed latency. Returns the share of requests each endpoint got.
 */
function simulate(type: BalancerType, latencies: readonly number[], requests: number): number[] {
  const clock = fakeClock(0);
  const eps = latencies.map((_, i) => new EndpointState({ address: `10.0.0.${i + 1}`, port: 80 }));
  const lb = createBalancer({ type }, eps, { now: clock.now, random: seeded(7) });
  const inflight: { done: number; ep: EndpointState; sent: number }[] = [];
  const counts = latencies.map(() => 0);
  for (let i = 0; i < requests; i++) {
    clock.t = i;
    inflight.sort((a, b) => a.done - b.done);
    while (inflight.length > 0 && inflight[0].done <= clock.t) {
      const r = inflight.shift()!;
      const saved = clock.t;
      clock.t = r.done;
      end(r.ep, r.done - r.sent);
      clock.t = saved;
    }
    const ep = lb.pick()!;
    start(ep);
    const idx = eps.indexOf(ep);
    counts[idx]++;
    inflight.push({ ep, sent: clock.t, done: clock.t + latencies[idx] });
  }
  return counts.map((c) => c / requests);
}

describe('peak-EWMA balancing', () => {
  it('sends far less traffic to a slow endpoint than to fast ones', () => {
    const latencies = [5, 5, 200];
    const ewma = simulate('peakEwma', latencies, 5000);
    const random = simulate('random', latencies, 5000);
    assert.ok(ewma[2] < 0.05, `slow share ${ewma[2].toFixed(3)} should be tiny`);
    assert.ok(ewma[0] > 0.4 && ewma[1] > 0.4, `fast shares ${ewma}`);
    // The same load under random balancing really is spread evenly, so the test can tell them apart.
    assert.ok(random[2] > 0.25, `random gives the slow endpoint its third: ${random}`);
  });

  it('moves traffic away from an endpoint that turns slow', () => {
    const clock = fakeClock(0);
    const eps = [
      new EndpointState({ address: 'fast', port: 1 }),
      new EndpointState({ address: 'slow', port: 1 }),
    ];
    const lb = createBalancer(undefined, eps, { now: clock.now, random: seeded(3) });
    const [a, b] = lb.endpoints;
    for (let i = 0; i < 20; i++) {
      clock.t += 10;
      recordRtt(a, 10);
      recordRtt(b, 10);
    }
    recordRtt(b, 400); // one slow response: the peak is taken at once
    let toSlow = 0;
    for (let i = 0; i < 1000; i++) if (lb.pick() === b) toSlow++;
    assert.equal(toSlow, 0);
  });
});
