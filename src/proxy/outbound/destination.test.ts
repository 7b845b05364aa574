import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { meshServiceSchema } from '../../config/proxy-config.ts';
import { trafficPolicySpecSchema } from '../../config/resources.ts';
import { ProxyMetrics } from '../../telemetry/metrics.ts';
import { resolveResilience } from '../retry/resilience-options.ts';
import { retryLayer } from '../retry/retry-layer.ts';
import { fakeRequest, readAll } from '../retry/test-support.ts';
import { PLAINTEXT } from '../transport/hop-security.ts';
import type { TransportSettings } from '../transport/transport-pool.ts';
import { Destination } from './destination.ts';

const transport: TransportSettings = {
  connectTimeout: 1000,
  idleTimeout: 1000,
  streamIdleTimeout: 1000,
  maxConnections: 4,
  security: PLAINTEXT,
};

const T = { timeout: 30_000 };

const service = meshServiceSchema.parse({
  name: 'reviews',
  endpoints: [
    { address: '127.0.0.1', port: 1 },
    { address: '127.0.0.1', port: 2 },
    { address: '127.0.0.1', port: 3 },
  ],
});

function policy(extra: Record<string, unknown>) {
  return trafficPolicySpecSchema.parse({ targetRef: { name: 'reviews' }, ...extra });
}

function newDestination(p: ReturnType<typeof policy>): Destination {
  return new Destination(
    service,
    p,
    transport,
    new ProxyMetrics({ service: 'web', namespace: 'default' }),
    false,
  );
}

test('a changed loadBalancer type takes effect on update (the balancer is not fixed at creation)', (t) => {
  const dst = newDestination(policy({ loadBalancer: { type: 'roundRobin' } }));
  t.after(() => dst.destroy());
  const rr = new Set<string>();
  for (let i = 0; i < 3; i++) rr.add(dst.balancer.pick()!.key);
  assert.equal(rr.size, 3, 'round robin visits every endpoint');

  dst.update(service, policy({ loadBalancer: { type: 'ringHash', hashOn: { header: 'x-user' } } }));
  const key = dst.hashKey({ 'x-user': 'alice' }, '127.0.0.9');
  assert.equal(key, 'alice');
  const picked = new Set<string>();
  for (let i = 0; i < 30; i++) picked.add(dst.balancer.pick({ hashKey: key })!.key);
  assert.equal(picked.size, 1, 'consistent hash keeps one key on one endpoint');
});

test('a changed loadBalancer keeps the endpoint objects (in-flight counts, ejections)', (t) => {
  const dst = newDestination(policy({ loadBalancer: { type: 'roundRobin' } }));
  t.after(() => dst.destroy());
  const before = dst.balancer.endpoints[0];
  before.active = 3;
  dst.update(service, policy({ loadBalancer: { type: 'leastRequest' } }));
  assert.equal(dst.balancer.endpoints[0], before);
  assert.equal(dst.balancer.endpoints[0].active, 3);
});

test('an unrelated policy change keeps ejections and an open circuit', (t) => {
  const base = {
    outlierDetection: {
      consecutive5xx: 2,
      interval: '10s',
      baseEjectionTime: '30s',
      maxEjectionPercent: 100,
    },
    circuitBreaker: { requestVolumeThreshold: 1, errorThresholdPercent: 50, sleepWindow: '30s' },
  };
  const dst = newDestination(policy(base));
  t.after(() => dst.destroy());
  const ep = dst.balancer.endpoints[0];
  dst.outlier!.record(ep, '5xx');
  dst.outlier!.record(ep, '5xx');
  assert.equal(ep.ejected, true);
  const breaker = dst.breaker!;
  for (let i = 0; i < 30 && breaker.state !== 'open'; i++) breaker.tryAcquire()?.record('failure', 1);
  assert.equal(breaker.state, 'open');

  dst.update(service, policy({ ...base, timeouts: { request: '3s' } }));
  assert.equal(dst.balancer.endpoints[0].ejected, true, 'ejection survives');
  assert.equal(dst.breaker, breaker, 'same breaker');
  assert.equal(dst.breaker!.state, 'open');

  dst.update(service, policy({ ...base, outlierDetection: { ...base.outlierDetection, consecutive5xx: 3 } }));
  assert.equal(dst.balancer.endpoints[0].ejected, false, 'a new outlier config starts over');
});

/** A policy the schema now refuses, built by hand as an old store or config file could hold it. */
function refusedPolicy(base: Record<string, unknown> = {}) {
  const p = policy(base);
  return { ...p, circuitBreaker: { ...policy({ circuitBreaker: {} }).circuitBreaker!, window: 0 } };
}

test('issue 10: a refused update changes nothing, and the same update is refused again', (t) => {
  const dst = newDestination(policy({ loadBalancer: { type: 'roundRobin' }, healthCheck: { type: 'tcp' } }));
  t.after(() => dst.destroy());
  const before = { balancer: dst.balancer, health: dst.health, breaker: dst.breaker, policy: dst.policy };
  const next = refusedPolicy({ loadBalancer: { type: 'leastRequest' }, healthCheck: { type: 'http' } });
  assert.throws(() => dst.update(service, next), /window must be > 0/);
  assert.equal(dst.balancer, before.balancer, 'balancer not swapped');
  assert.equal(dst.health, before.health, 'health checker not swapped');
  assert.equal(dst.breaker, undefined);
  assert.equal(dst.policy, before.policy, 'policy not recorded');
  // Old code recorded the sections as applied before throwing: the retry was accepted.
  assert.throws(() => dst.update(service, next), /window must be > 0/);
  assert.throws(() => dst.update({ ...service, endpoints: service.endpoints.slice(1) }, next));
  assert.equal(dst.balancer.endpoints.length, 3, 'the endpoint change of a refused update is not applied');
});

test('a prepared update is not in force until committed; abort drops it', (t) => {
  const dst = newDestination(policy({}));
  t.after(() => dst.destroy());
  const u = dst.prepare(service, policy({ circuitBreaker: { requestVolumeThreshold: 1 } }));
  assert.ok(u.parts.breaker, 'the new breaker is built');
  assert.equal(dst.breaker, undefined, 'but not in force');
  u.abort();
  u.commit();
  assert.equal(dst.breaker, undefined, 'commit after abort is a no-op');
  const v = dst.prepare(service, policy({ circuitBreaker: { requestVolumeThreshold: 1 } }));
  v.commit();
  assert.equal(dst.breaker, v.parts.breaker);
});

/** Real HTTP servers on port 0, each answering its own port; `failing` ones answer 503 at once. */
async function endpoints(t: TestContext, count: number, failing: number[]) {
  const tries: number[][] = [];
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const seen: number[] = [];
    tries.push(seen);
    const server = http.createServer((req, res) => {
      seen.push(Number(req.headers['x-try']));
      res.writeHead(failing.includes(i) ? 503 : 200).end(String(i));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    ports.push((server.address() as AddressInfo).port);
  }
  const svc = meshServiceSchema.parse({
    name: 'reviews',
    endpoints: ports.map((port) => ({ address: '127.0.0.1', port })),
  });
  const dst = new Destination(
    svc,
    undefined,
    transport,
    new ProxyMetrics({ service: 'web', namespace: 'default' }),
    false,
  );
  t.after(() => dst.destroy());
  // One retry on 503, as a route's `retry: { codes: [503], attempts: 1 }`; each try tells its number.
  const retrying = retryLayer(resolveResilience({ retry: { codes: [503], attempts: 1 } }), {
    random: () => 0,
  })((req) => {
    req.headers['x-try'] = String(req.ctx.attempt);
    return dst.send(req);
  });
  return { dst, tries, retrying };
}

test('a retry skips the endpoint that just failed when another healthy one exists', T, async (t) => {
  // Endpoint 0 fails fast: peak-EWMA finds it cheapest and, before, sent it its own retries.
  const { tries, retrying } = await endpoints(t, 3, [0]);
  for (let i = 0; i < 40; i++) {
    const res = await retrying(fakeRequest());
    const body = (await readAll(res.body)).toString();
    assert.equal(res.status, 200, `request ${i} answered ${res.status} by endpoint ${body}`);
    assert.notEqual(body, '0');
  }
  assert.ok(tries[0].length > 0, 'the failing endpoint was tried at all');
  assert.deepEqual(new Set(tries[0]), new Set([0]), 'the failing endpoint only ever got first tries');
});

test('a retry goes back to the endpoint that failed when no other is eligible', T, async (t) => {
  const { dst, tries, retrying } = await endpoints(t, 2, [0, 1]);
  dst.balancer.endpoints[1].ejected = true;
  const res = await retrying(fakeRequest());
  assert.equal(res.status, 503);
  assert.deepEqual(tries[0], [0, 1], 'both tries on the only eligible endpoint');
  assert.deepEqual(tries[1], []);
});
