/**
 * Resilience end to end: real app servers behind real sidecars, one client sidecar in front,
 * real HTTP requests. Each test says what would fail without the feature it proves.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { metricValue, policy, serviceEntry, startClient, startInstance } from '../support/cluster.ts';

test('killing one of three upstreams under load: every GET still succeeds, the dead one is ejected', async (t) => {
  // Without connect-failure/reset retries the requests in flight to (or pooled on) the killed
  // instance fail with 502; without outlier ejection the metric assertion fails.
  const instances = await Promise.all(
    [0, 1, 2].map((i) => startInstance('catalog', (_req, res) => res.end(`instance ${i}`))),
  );
  const client = await startClient(
    [serviceEntry('catalog', instances)],
    [
      policy('catalog-lb', 'catalog', {
        // Round robin keeps sending to the dead endpoint until it is ejected, so the test
        // exercises retries and ejection rather than peak-EWMA steering away by latency.
        loadBalancer: { type: 'roundRobin' },
        outlierDetection: { consecutiveGatewayErrors: 2, maxEjectionPercent: 50 },
      }),
    ],
  );
  t.after(async () => {
    await client.close();
    await Promise.all(instances.map((i) => i.kill()));
  });

  const total = 600;
  const concurrency = 8;
  const deadline = Date.now() + 15_000;
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let started = 0;
  let killed: Promise<void> | undefined;
  const worker = async (): Promise<void> => {
    while (started < total && Date.now() < deadline) {
      const n = started++;
      if (n === total / 3) killed = instances[1].kill();
      const r = await request(`${client.outboundUrl}/item/${n}`, { headers: { host: 'catalog' } });
      const body = await r.body.text();
      statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
      if (r.statusCode !== 200 && failures.length < 5)
        failures.push(`${r.statusCode} ${String(r.headers['x-hexmesh-error'])} ${body.trim()}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await killed;

  assert.equal(started, total, 'the load loop ran out of time');
  assert.deepEqual([...statuses], [[200, total]], `non-200 answers: ${failures.join(' | ')}`);
  assert.ok(
    (await metricValue(client.adminUrl, 'hexmesh_outlier_ejections_total', { dst_service: 'catalog' })) >= 1,
    'no outlier ejection recorded',
  );
  assert.ok(
    (await metricValue(client.adminUrl, 'hexmesh_retries_total', { dst_service: 'catalog' })) >= 1,
    'no retry recorded',
  );
});

/** An HTTPRoute attached to a Service (GAMMA producer route) with one rule. */
function route(service: string, rule: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: `${service}-route` },
    spec: {
      parentRefs: [{ kind: 'Service', name: service }],
      // A rule without backendRefs answers 500 (Gateway API); this one sends to the service itself.
      rules: [{ backendRefs: [{ name: service }], ...rule }],
    },
  };
}

/** One app behind one sidecar and a client sidecar with the given resources. */
async function single(
  t: { after(fn: () => Promise<void>): void },
  service: string,
  handler: Parameters<typeof startInstance>[1],
  resources: unknown[],
): Promise<(path?: string, init?: Parameters<typeof request>[1]) => ReturnType<typeof request>> {
  const inst = await startInstance(service, handler);
  const client = await startClient([serviceEntry(service, [inst])], resources);
  t.after(async () => {
    await client.close();
    await inst.kill();
  });
  const get = (path = '/', init: Parameters<typeof request>[1] = {}): ReturnType<typeof request> =>
    request(`${client.outboundUrl}${path}`, { ...init, headers: { host: service, ...init?.headers } });
  Object.assign(get, { adminUrl: client.adminUrl });
  return get;
}

test('slow upstream trips the slow-call circuit; the fallback answers quickly', async (t) => {
  // Without slow-call detection every request waits ~300 ms for the app and no fallback header appears.
  let hits = 0;
  const call = await single(
    t,
    'slowpoke',
    (_req, res) => {
      hits++;
      setTimeout(() => res.end('real'), 300);
    },
    [
      policy('slowpoke-cb', 'slowpoke', {
        circuitBreaker: {
          slowCallDuration: '100ms',
          slowCallThresholdPercent: 50,
          requestVolumeThreshold: 5,
          sleepWindow: '1s',
        },
        fallback: { response: { status: 200, body: 'from fallback' } },
      }),
    ],
  );
  for (let i = 0; i < 5; i++) {
    const r = await call();
    assert.equal(await r.body.text(), 'real');
  }
  const t0 = performance.now();
  const r = await call();
  const elapsed = performance.now() - t0;
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['x-hexmesh-fallback'], 'circuit-open');
  assert.equal(await r.body.text(), 'from fallback');
  assert.ok(elapsed < 250, `fallback took ${elapsed.toFixed(0)} ms`);
  assert.equal(hits, 5, 'the open circuit must not call the app');
});

test('a full bulkhead answers overloaded at once', async (t) => {
  // Without the bulkhead the third request would wait at the app like the first two.
  const held: import('node:http').ServerResponse[] = [];
  const call = await single(t, 'narrow', (_req, res) => held.push(res), [
    policy('narrow-pool', 'narrow', { connectionPool: { maxRequests: 2, maxPendingRequests: 0 } }),
  ]);
  const first = [call('/1'), call('/2')];
  for (let i = 0; i < 100 && held.length < 2; i++) await sleep(20);
  assert.equal(held.length, 2, 'the app did not get the first two requests');
  const t0 = performance.now();
  const r = await call('/3');
  const elapsed = performance.now() - t0;
  assert.equal(r.statusCode, 503);
  assert.equal(r.headers['x-hexmesh-error'], 'overloaded');
  assert.match(await r.body.text(), /^too many requests to narrow \(max 2 concurrent, 0 pending\)\n$/);
  assert.ok(elapsed < 1000, `refusal took ${elapsed.toFixed(0)} ms`);
  for (const res of held) res.end('ok');
  for (const p of first) assert.equal(await (await p).body.text(), 'ok');
  // Slots are released: another request goes through.
  const after = call('/4');
  for (let i = 0; i < 100 && held.length < 3; i++) await sleep(20);
  held[2]?.end('ok');
  assert.equal((await after).statusCode, 200);
});

test('the circuit half-opens after the sleep window and closes on a good probe', async (t) => {
  // Without the breaker the 5xx answers keep reaching the app; without half-open the circuit
  // would never close (or would let every request through at once).
  let broken = true;
  let hits = 0;
  let holdNext: ((res: import('node:http').ServerResponse) => void) | undefined;
  const call = await single(
    t,
    'flaky',
    (_req, res) => {
      hits++;
      if (broken) {
        res.statusCode = 500;
        res.end('broken');
      } else if (holdNext) {
        const h = holdNext;
        holdNext = undefined;
        h(res);
      } else res.end('fine');
    },
    [
      policy('flaky-cb', 'flaky', {
        circuitBreaker: { requestVolumeThreshold: 4, errorThresholdPercent: 50, sleepWindow: '1s' },
        outlierDetection: { consecutive5xx: 0, consecutiveGatewayErrors: 0 },
      }),
    ],
  );
  const adminUrl = (call as unknown as { adminUrl: string }).adminUrl;
  const state = () => metricValue(adminUrl, 'hexmesh_circuit_state', { dst_service: 'flaky' });
  assert.equal(await state(), 0);
  for (let i = 0; i < 4; i++) assert.equal((await call()).statusCode, 500);
  const open = await call();
  assert.equal(open.statusCode, 503);
  assert.equal(open.headers['x-hexmesh-error'], 'circuit-open');
  assert.equal(await open.body.text(), 'circuit open for flaky\n');
  assert.equal(hits, 4);
  assert.equal(await state(), 2);

  broken = false;
  // Still inside the sleep window: refused without calling the app.
  assert.equal((await call()).headers['x-hexmesh-error'], 'circuit-open');
  assert.equal(hits, 4);
  await sleep(1100);

  // The probe: held at the app so the half-open state can be seen.
  let release!: () => void;
  const atApp = new Promise<void>((resolve) => {
    holdNext = (res) => {
      release = () => res.end('probe ok');
      resolve();
    };
  });
  const probe = call('/probe');
  await atApp;
  assert.equal(await state(), 1);
  const second = await call();
  assert.equal(second.headers['x-hexmesh-error'], 'circuit-open', 'only one probe in half-open');
  await second.body.text();
  release();
  const p = await probe;
  assert.equal(await p.body.text(), 'probe ok');
  assert.equal(await state(), 0);
  const before = hits;
  for (let i = 0; i < 3; i++) assert.equal(await (await call()).body.text(), 'fine');
  assert.equal(hits, before + 3);
});

test('route request timeout: 504 timeout after 200 ms; per-try timeout retries and succeeds', async (t) => {
  // Without the request timeout the client waits the app's full 5 s; without per-try
  // timeouts the first slow try is never abandoned and the request times out instead.
  let tries = 0;
  const slowCall = await single(t, 'sluggish', (_req, res) => void setTimeout(() => res.end('late'), 5000), [
    route('sluggish', { timeouts: { request: '200ms' } }),
  ]);
  const t0 = performance.now();
  const r = await slowCall('/');
  const elapsed = performance.now() - t0;
  assert.equal(r.statusCode, 504);
  assert.equal(r.headers['x-hexmesh-error'], 'timeout');
  assert.equal(await r.body.text(), 'timeout after 200 ms calling sluggish\n');
  // Bounds loose enough for a loaded machine, well clear of the app's 5 s.
  assert.ok(elapsed >= 190 && elapsed < 4000, `took ${elapsed.toFixed(0)} ms`);

  const retryCall = await single(
    t,
    'hiccup',
    (_req, res) => {
      const n = ++tries;
      if (n === 1) setTimeout(() => res.end('late'), 5000);
      else res.end(`try ${n}`);
    },
    [route('hiccup', { timeouts: { request: '4s', backendRequest: '500ms' }, retry: { attempts: 2 } })],
  );
  const ok = await retryCall('/');
  assert.equal(ok.statusCode, 200);
  assert.equal(await ok.body.text(), 'try 2');
});

test('retries: GET on a listed 503; POST not by default; POST body replayed with retryNonIdempotent', async (t) => {
  // Without status retries the GET answers 503; a POST retried by default would reach the
  // app twice; without body replay the second POST try would have an empty body.
  const seen: { method: string; body: string }[] = [];
  const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method!, body });
      const n = seen.filter((s) => s.method === req.method).length;
      res.statusCode = n === 1 ? 503 : 200;
      res.end(`${req.method} ${n} ${body}`);
    });
  };
  const plain = await single(t, 'choppy', handler, [route('choppy', { retry: { codes: [503] } })]);
  const g = await plain('/');
  assert.equal(g.statusCode, 200);
  assert.equal(await g.body.text(), 'GET 2 ');
  const p = await plain('/', { method: 'POST', body: 'order=1' });
  assert.equal(p.statusCode, 503);
  await p.body.text();
  assert.deepEqual(
    seen.filter((s) => s.method === 'POST'),
    [{ method: 'POST', body: 'order=1' }],
  );

  seen.length = 0;
  const opted = await single(t, 'choppy2', handler, [
    route('choppy2', { retry: { codes: [503], retryNonIdempotent: true } }),
  ]);
  const p2 = await opted('/', { method: 'POST', body: 'order=2' });
  assert.equal(p2.statusCode, 200);
  assert.equal(await p2.body.text(), 'POST 2 order=2');
  assert.deepEqual(seen, [
    { method: 'POST', body: 'order=2' },
    { method: 'POST', body: 'order=2' },
  ]);
});

test('rate limit answers 429 rate-limited once the bucket is empty', async (t) => {
  // Without the rate-limit layer the third request reaches the app.
  let hits = 0;
  const call = await single(t, 'metered', (_req, res) => (hits++, res.end('ok')), [
    policy('metered-rl', 'metered', { rateLimit: { maxTokens: 2, tokensPerFill: 1, fillInterval: '1m' } }),
  ]);
  for (let i = 0; i < 2; i++) assert.equal((await call()).statusCode, 200);
  const r = await call();
  assert.equal(r.statusCode, 429);
  assert.equal(r.headers['x-hexmesh-error'], 'rate-limited');
  assert.equal(await r.body.text(), 'rate limited: 1 requests per 1m for metered\n');
  assert.equal(hits, 2);
});

test('fault injection: abort 100% answers the configured status; delay adds latency', async (t) => {
  // Without the fault layer both requests reach the app at once and answer 200.
  let hits = 0;
  const handler = (_req: unknown, res: import('node:http').ServerResponse) => (hits++, res.end('ok'));
  const aborting = await single(t, 'fragile', handler, [
    policy('fragile-fault', 'fragile', { faults: { abort: { percent: 100, status: 418 } } }),
  ]);
  const a = await aborting();
  assert.equal(a.statusCode, 418);
  assert.equal(a.headers['x-hexmesh-error'], 'fault-injected');
  assert.equal(await a.body.text(), 'fault injected: abort with status 418 calling fragile\n');
  assert.equal(hits, 0);

  const delaying = await single(t, 'laggy', handler, [
    policy('laggy-fault', 'laggy', { faults: { delay: { percent: 100, duration: '300ms' } } }),
  ]);
  const t0 = performance.now();
  const d = await delaying();
  const elapsed = performance.now() - t0;
  assert.equal(await d.body.text(), 'ok');
  assert.ok(elapsed >= 290, `delay of ${elapsed.toFixed(0)} ms`);
  assert.equal(hits, 1);
});
