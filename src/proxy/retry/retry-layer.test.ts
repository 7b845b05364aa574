import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { resolveResilience, type RouteRuleResilience, type PolicyResilience } from './resilience-options.ts';
import { RetryBudget } from './retry-budget.ts';
import { backoffDelay, retryLayer, type RetryLayerDeps } from './retry-layer.ts';
import { fakeRequest, fakeResponse, readAll } from './test-support.ts';

const T = { timeout: 10_000 };
const zero = (): number => 0;

function build(
  inner: Service,
  rule?: RouteRuleResilience,
  policy?: Omit<PolicyResilience, 'targetRef'>,
  deps: RetryLayerDeps = { random: zero },
): Service {
  return retryLayer(resolveResilience(rule, policy as PolicyResilience), deps)(inner);
}

/** An inner service answering from a script, one entry per try; records every request. */
function scripted(...outcomes: Array<number | HexmeshError>) {
  const seen: Array<{ attempt: number; body: Buffer }> = [];
  const bodies: Array<Readable | null> = [];
  const svc: Service = async (req: MeshRequest): Promise<MeshResponse> => {
    const body = await readAll(req.body);
    seen.push({ attempt: req.ctx.attempt, body });
    const o = outcomes[Math.min(seen.length - 1, outcomes.length - 1)];
    if (o instanceof HexmeshError) throw o;
    const res = fakeResponse(o, `try ${seen.length}`);
    bodies.push(res.body);
    return res;
  };
  return { svc, seen, bodies };
}

const connectFailed = () =>
  new HexmeshError('HEXMESH_ERR_CONNECT_FAILED', 'connect refused by 127.0.0.1:1', {
    context: { endpoint: '127.0.0.1:1', service: 'reviews' },
  });

test('GET is retried on 503 when the code is configured, and succeeds on the 2nd try', T, async () => {
  const s = scripted(503, 200);
  const req = fakeRequest({ method: 'GET' });
  const res = await build(s.svc, { retry: { codes: [503] } })(req);
  assert.equal(res.status, 200);
  assert.equal((await readAll(res.body)).toString(), 'try 2');
  assert.deepEqual(
    s.seen.map((x) => x.attempt),
    [0, 1],
  );
  assert.equal(req.ctx.notes.retries, 1);
  assert.equal(s.bodies[0]!.destroyed, true, 'the discarded 503 body is destroyed');
});

test('503 is not retried by default (no codes configured)', T, async () => {
  const s = scripted(503, 200);
  const res = await build(s.svc)(fakeRequest({ method: 'GET' }));
  assert.equal(res.status, 503);
  assert.equal(s.seen.length, 1);
});

test('POST is not retried on 503 by default, but is with retryNonIdempotent', T, async () => {
  const a = scripted(503, 200);
  const r1 = await build(a.svc, { retry: { codes: [503] } })(
    fakeRequest({ method: 'POST', body: Readable.from([Buffer.from('x')]) }),
  );
  assert.equal(r1.status, 503);
  assert.equal(a.seen.length, 1);

  const b = scripted(503, 200);
  const r2 = await build(b.svc, { retry: { codes: [503], retryNonIdempotent: true } })(
    fakeRequest({ method: 'POST', body: Readable.from([Buffer.from('x')]) }),
  );
  assert.equal(r2.status, 200);
  assert.equal(b.seen.length, 2);
  assert.deepEqual(b.seen[1].body, Buffer.from('x'));
});

test('a connect failure is retried for POST (nothing was sent)', T, async () => {
  const s = scripted(connectFailed(), 200);
  const res = await build(s.svc)(fakeRequest({ method: 'POST' }));
  assert.equal(res.status, 200);
  assert.equal(s.seen.length, 2);
});

test('attempts cap: 3 retries means 4 tries, then the last outcome is returned', T, async () => {
  const s = scripted(503);
  const res = await build(s.svc, { retry: { codes: [503], attempts: 3 } })(fakeRequest());
  assert.equal(res.status, 503);
  assert.equal(s.seen.length, 4);

  const e = scripted(connectFailed());
  await assert.rejects(build(e.svc)(fakeRequest()), { code: 'HEXMESH_ERR_CONNECT_FAILED' });
  assert.equal(e.seen.length, 3, 'default: 2 retries on connect failure');
});

test(
  'upstream reset: retried for GET by default, not when `on` leaves it out, never for POST',
  T,
  async () => {
    const reset = () => new HexmeshError('HEXMESH_ERR_UPSTREAM_RESET', 'upstream reset');
    const a = scripted(reset(), 200);
    assert.equal((await build(a.svc)(fakeRequest())).status, 200);
    const b = scripted(reset(), 200);
    await assert.rejects(build(b.svc, undefined, { retries: { on: ['connect-failure'] } })(fakeRequest()), {
      code: 'HEXMESH_ERR_UPSTREAM_RESET',
    });
    const c = scripted(reset(), 200);
    await assert.rejects(
      build(c.svc, undefined, { retries: { on: ['reset'] } })(fakeRequest({ method: 'POST' })),
      {
        code: 'HEXMESH_ERR_UPSTREAM_RESET',
      },
    );
    assert.deepEqual([a.seen.length, b.seen.length, c.seen.length], [2, 1, 1]);
  },
);

test('5xx and gateway-error classes', T, async () => {
  const a = scripted(500, 200);
  assert.equal((await build(a.svc, undefined, { retries: { on: ['5xx'] } })(fakeRequest())).status, 200);
  const b = scripted(500, 200);
  assert.equal(
    (await build(b.svc, undefined, { retries: { on: ['gateway-error'] } })(fakeRequest())).status,
    500,
  );
  const c = scripted(504, 200);
  assert.equal(
    (await build(c.svc, undefined, { retries: { on: ['gateway-error'] } })(fakeRequest())).status,
    200,
  );
});

test('gRPC: a configured grpc-status in trailers-only headers is retried, others are not', T, async () => {
  const policy = { retries: { grpcStatuses: ['unavailable' as const] } };
  let calls = 0;
  const svc =
    (gs: string): Service =>
    async () => {
      calls++;
      return calls === 1
        ? fakeResponse(200, '', { 'grpc-status': gs })
        : fakeResponse(200, '', { 'grpc-status': '0' });
    };
  const r1 = await build(svc('14'), undefined, policy)(fakeRequest({ method: 'POST', grpc: true }));
  assert.equal(r1.headers['grpc-status'], '0');
  assert.equal(calls, 2);
  calls = 0;
  const r2 = await build(svc('13'), undefined, policy)(fakeRequest({ method: 'POST', grpc: true }));
  assert.equal(r2.headers['grpc-status'], '13');
  assert.equal(calls, 1);
});

test('backoff: full jitter within [0, (2^n − 1)·base) capped at max', () => {
  const almostOne = () => 0.999999;
  const bounds = [25, 75, 175, 250, 250, 250];
  for (let n = 1; n <= bounds.length; n++) {
    const hi = backoffDelay(n, 25, 250, almostOne);
    assert.ok(hi < bounds[n - 1] && hi > bounds[n - 1] * 0.99, `retry ${n}: ${hi}`);
    assert.equal(backoffDelay(n, 25, 250, zero), 0);
  }
});

test('the layer waits the jittered backoff between tries', T, async () => {
  const times: number[] = [];
  const draws: number[] = [];
  const svc: Service = async () => {
    times.push(performance.now());
    return fakeResponse(times.length < 3 ? 503 : 200);
  };
  // base 40 ms, random 0.5: retry 1 waits 20 ms, retry 2 waits 0.5 · 120 = 60 ms.
  const res = await build(svc, { retry: { codes: [503], backoff: 40 } }, undefined, {
    random: () => {
      draws.push(0.5);
      return 0.5;
    },
  })(fakeRequest());
  assert.equal(res.status, 200);
  assert.equal(draws.length, 2);
  assert.ok(times[1] - times[0] >= 18, `first wait ${times[1] - times[0]}`);
  assert.ok(times[2] - times[1] >= 55, `second wait ${times[2] - times[1]}`);
  assert.ok(times[2] - times[0] < 5_000);
});

test('a retry whose backoff would end past the deadline ends the request as a timeout', T, async () => {
  // Gateway API HTTPRouteRetryWithTimeouts: retries cut by the request timeout answer 504, not
  // the 503 that asked for the retry.
  const s = scripted(503, 200);
  const now = () => 1000;
  const req = fakeRequest({ deadline: 1010 });
  // random 0.9 of a 25 ms ceiling = 22.5 ms > 10 ms left.
  await assert.rejects(
    build(s.svc, { retry: { codes: [503] } }, undefined, { now, random: () => 0.9 })(req),
    (e: HexmeshError) => e.code === 'HEXMESH_ERR_TIMEOUT',
  );
  assert.equal(s.seen.length, 1);
  assert.equal(s.bodies[0]!.destroyed, true, 'the 503 thrown away has its body destroyed');
});

test('budget exhaustion stops retries and is noted', T, async () => {
  let t = 0;
  const now = () => t;
  const budget = new RetryBudget({ percent: 0, minPerSecond: 1, window: 1000 }, now);
  const layer = build(scripted(503).svc, { retry: { codes: [503], attempts: 5 } }, undefined, {
    now,
    random: zero,
    budget,
  });
  const r1 = fakeRequest();
  assert.equal((await layer(r1)).status, 503);
  assert.equal(r1.ctx.notes.retries, 1, 'the reserve of 1 retry/s allows exactly one');
  assert.equal(r1.ctx.notes.budgetExhausted, true);
  const r2 = fakeRequest();
  await layer(r2);
  assert.equal(r2.ctx.notes.retries, undefined);
  assert.equal(r2.ctx.notes.budgetExhausted, true);
  t = 1500; // the window slid past the spent retry
  const r3 = fakeRequest();
  await layer(r3);
  assert.equal(r3.ctx.notes.retries, 1);
});

test('a body under 64 KiB, streamed in chunks, is replayed byte-identically', T, async () => {
  const parts = [randomBytes(10_000), randomBytes(30_000), randomBytes(20_000)];
  const whole = Buffer.concat(parts);
  const src = new PassThrough();
  const s = scripted(503, 503, 200);
  const req = fakeRequest({ method: 'PUT', body: src });
  const pending = build(s.svc, { retry: { codes: [503] } })(req);
  for (const p of parts) {
    src.write(p);
    await new Promise((r) => setImmediate(r));
  }
  src.end();
  assert.equal((await pending).status, 200);
  assert.equal(s.seen.length, 3);
  for (const x of s.seen) assert.ok(x.body.equals(whole), `try ${x.attempt} got ${x.body.length} bytes`);
});

test('a body over 64 KiB is not retried', T, async () => {
  const body = Readable.from([randomBytes(40_000), randomBytes(40_000)]);
  const s = scripted(503, 200);
  const res = await build(s.svc, { retry: { codes: [503] } })(fakeRequest({ method: 'PUT', body }));
  assert.equal(res.status, 503);
  assert.equal(s.seen.length, 1);
  assert.equal(s.seen[0].body.length, 80_000, 'the first try still got the whole body');
});

test('a connect failure before any byte was read is retried even with a body over 64 KiB', T, async () => {
  const big = randomBytes(100_000);
  let calls = 0;
  let got: Buffer = Buffer.alloc(0);
  const svc: Service = async (req) => {
    if (++calls === 1) throw connectFailed();
    got = await readAll(req.body);
    return fakeResponse(200);
  };
  const res = await build(svc)(fakeRequest({ method: 'POST', body: Readable.from([big]) }));
  assert.equal(res.status, 200);
  assert.ok(got.equals(big));
});

test('the first try starts before the request body is complete', T, async () => {
  const src = new PassThrough();
  src.write('head-');
  let endedAtCall: boolean | undefined;
  let got = '';
  const svc: Service = async (req) => {
    endedAtCall = src.writableEnded;
    // Only now, after the inner service has been called, does the body finish.
    setImmediate(() => src.end('tail'));
    got = (await readAll(req.body)).toString();
    return fakeResponse(200);
  };
  const res = await build(svc, { retry: { codes: [503] } })(fakeRequest({ method: 'PUT', body: src }));
  assert.equal(res.status, 200);
  assert.equal(endedAtCall, false);
  assert.equal(got, 'head-tail');
});

test('a body not finished when the try fails is not retried', T, async () => {
  const src = new PassThrough();
  let calls = 0;
  const svc: Service = async (req) => {
    calls++;
    await new Promise((r) => req.body!.once('data', r)); // read a first chunk, then answer early
    return fakeResponse(503);
  };
  const pending = build(svc, { retry: { codes: [503] } })(fakeRequest({ method: 'PUT', body: src }));
  src.write('part');
  const res = await pending;
  src.end();
  assert.equal(res.status, 503);
  assert.equal(calls, 1);
});

test('downstream abort stops the retry loop', T, async () => {
  const ac = new AbortController();
  let calls = 0;
  const svc: Service = async () => {
    calls++;
    ac.abort(new Error('downstream gone'));
    return fakeResponse(503);
  };
  const res = await build(svc, { retry: { codes: [503] } })(fakeRequest({ signal: ac.signal }));
  assert.equal(res.status, 503);
  assert.equal(calls, 1);
});
