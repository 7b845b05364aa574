import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import type { MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { Bulkhead } from './bulkhead.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { FALLBACK_HEADER, fallbackFromSpec, serviceFallback, staticFallback } from './fallback.ts';
import { breakerLayer } from './layer.ts';

function request(opts: { grpc?: boolean; signal?: AbortSignal; deadline?: number } = {}): MeshRequest {
  return {
    method: 'GET',
    authority: 'reviews:9080',
    path: '/reviews/1',
    headers: {},
    body: null,
    protocol: opts.grpc ? 'http2' : 'http1',
    grpc: opts.grpc ?? false,
    ctx: {
      start: performance.now(),
      direction: 'outbound',
      srcAddress: '127.0.0.1',
      signal: opts.signal ?? new AbortController().signal,
      srcService: 'productpage',
      dstService: 'reviews',
      route: 'default',
      deadline: opts.deadline ?? Infinity,
      attempt: 0,
      endpoint: '',
      peerIdentity: '',
      tls: false,
      notes: {},
    },
  };
}

function respond(status: number, body?: string): MeshResponse {
  return { status, headers: {}, body: body === undefined ? null : Readable.from([Buffer.from(body)]) };
}

async function readBody(res: MeshResponse): Promise<string> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString();
}

function isCode(code: string, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof HexmeshError, `expected HexmeshError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  };
}

/** Settles within `ms` or fails: a refusal must not wait for held requests. */
async function within<T>(p: Promise<T>, ms = 1000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** An inner service whose calls hang until the test answers them. */
function heldService() {
  const held: { req: MeshRequest; answer: (r: MeshResponse) => void; fail: (e: unknown) => void }[] = [];
  const svc: Service = (req) =>
    new Promise((answer, fail) => {
      held.push({ req, answer, fail });
    });
  return { svc, held };
}

test('full bulkhead answers overloaded at once while other requests are held', async () => {
  const { svc: inner, held } = heldService();
  const bulkhead = new Bulkhead({ maxRequests: 2, maxPending: 1 });
  const svc = breakerLayer({ bulkhead, service: 'reviews' })(inner);
  const a = svc(request());
  const b = svc(request());
  const queued = svc(request());
  await within(
    assert.rejects(
      svc(request()),
      isCode('HEXMESH_ERR_OVERLOADED', /^too many requests to reviews \(max 2 concurrent, 1 pending\)$/),
    ),
  );
  assert.equal(held.length, 2, 'the queued request has not reached the service');
  assert.equal(bulkhead.active, 2);
  assert.equal(bulkhead.pending, 1);

  held[0].answer(respond(200, 'a'));
  assert.equal(await readBody(await a), 'a');
  await new Promise((r) => setImmediate(r));
  assert.equal(held.length, 3, 'the queued request ran once a slot was free');
  held[1].answer(respond(200));
  held[2].answer(respond(200));
  await Promise.all([b, queued]);
  assert.equal(bulkhead.active, 0);
  assert.equal(bulkhead.pending, 0);
});

test('full bulkhead with a static fallback answers it with reason overloaded', async () => {
  const { svc: inner, held } = heldService();
  const bulkhead = new Bulkhead({ maxRequests: 1, maxPending: 0 });
  const fallback = staticFallback({ status: 200, headers: { 'X-Cached': 'yes' }, body: 'cached' });
  const svc = breakerLayer({ bulkhead, fallback, service: 'reviews' })(inner);
  const first = svc(request());
  const req = request();
  const res = await within(svc(req));
  assert.equal(res.status, 200);
  assert.equal(res.headers[FALLBACK_HEADER], 'overloaded');
  assert.equal(res.headers['x-cached'], 'yes');
  assert.equal(res.synthetic, 'overloaded');
  assert.equal(req.ctx.notes.fallback, 'overloaded');
  assert.equal(await readBody(res), 'cached');
  held[0].answer(respond(204));
  await first;
  assert.equal(bulkhead.active, 0);
});

test('circuit opens on failures, half-opens after the sleep window, closes on a good probe', async () => {
  let now = 0;
  const clock = () => now;
  const breaker = new CircuitBreaker(
    { requestVolumeThreshold: 4, errorThresholdPercent: 50, sleepWindow: 5000 },
    { now: clock },
  );
  const states: string[] = [];
  breaker.onStateChange((s) => states.push(s));
  let calls = 0;
  let next: () => Promise<MeshResponse> = async () => respond(503);
  const svc = breakerLayer({ breaker, service: 'reviews', now: clock })(() => {
    calls++;
    return next();
  });

  for (let i = 0; i < 4; i++) assert.equal((await svc(request())).status, 503, 'a 5xx passes through');
  assert.equal(breaker.state, 'open');
  await assert.rejects(svc(request()), isCode('HEXMESH_ERR_CIRCUIT_OPEN', /^circuit open for reviews$/));
  assert.equal(calls, 4, 'an open circuit does not call the destination');

  now += 4999;
  await assert.rejects(svc(request()), isCode('HEXMESH_ERR_CIRCUIT_OPEN'));
  now += 1;
  // The probe streams its body; the circuit decides when that body ends.
  const probeBody = new PassThrough();
  next = async () => ({ status: 200, headers: {}, body: probeBody });
  const probe = await svc(request());
  assert.equal(breaker.state, 'half-open');
  await assert.rejects(svc(request()), isCode('HEXMESH_ERR_CIRCUIT_OPEN'), 'only one trial');
  probeBody.end('ok');
  assert.equal(await readBody(probe), 'ok');
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.snapshot().total, 0, 'window reset on close');
  next = async () => respond(200);
  assert.equal((await svc(request())).status, 200);
  assert.deepEqual(states, ['open', 'half-open', 'closed']);
});

test('a failed probe opens the circuit again for another sleep window', async () => {
  let now = 0;
  const clock = () => now;
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 1, sleepWindow: 1000 }, { now: clock });
  const svc = breakerLayer({ breaker, service: 'reviews', now: clock })(async () => {
    throw new HexmeshError('HEXMESH_ERR_CONNECT_FAILED', 'connect refused by 10.0.0.1:80');
  });
  await assert.rejects(svc(request()), isCode('HEXMESH_ERR_CONNECT_FAILED'));
  assert.equal(breaker.state, 'open');
  now = 1000;
  await assert.rejects(svc(request()), isCode('HEXMESH_ERR_CONNECT_FAILED'), 'the probe ran and failed');
  assert.equal(breaker.state, 'open');
  now = 1999;
  await assert.rejects(svc(request()), isCode('HEXMESH_ERR_CIRCUIT_OPEN'));
});

test('slow calls trip the slow-call circuit and the static fallback answers with the configured body', async () => {
  let now = 0;
  const clock = () => now;
  const breaker = new CircuitBreaker(
    {
      requestVolumeThreshold: 3,
      slowCallDuration: 100,
      slowCallThresholdPercent: 60,
      errorThresholdPercent: 50,
    },
    { now: clock },
  );
  const fallback = fallbackFromSpec({
    response: { status: 203, headers: { 'content-type': 'application/json' }, body: '{"reviews":[]}' },
  })!;
  let calls = 0;
  const svc = breakerLayer({ breaker, fallback, service: 'reviews', now: clock })(async () => {
    calls++;
    now += 150; // the destination answers correctly, but slowly
    return respond(200, 'fresh');
  });
  for (let i = 0; i < 3; i++) {
    const res = await svc(request());
    assert.equal(await readBody(res), 'fresh', 'slow successes are still answered');
  }
  assert.equal(breaker.state, 'open');
  assert.equal(breaker.snapshot().slow, 3);
  const res = await svc(request());
  assert.equal(calls, 3);
  assert.equal(res.status, 203);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['content-length'], '14');
  assert.equal(res.headers[FALLBACK_HEADER], 'circuit-open');
  assert.equal(res.synthetic, 'circuit-open');
  assert.equal(await readBody(res), '{"reviews":[]}');
});

test('a fallback service is called when the circuit is open, and on failure', async () => {
  const now = 0;
  const clock = () => now;
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 2, sleepWindow: 5000 }, { now: clock });
  const seen: string[] = [];
  const fallback = serviceFallback(async (req) => {
    seen.push(req.path);
    return respond(200, 'from ratings-cache');
  });
  let calls = 0;
  const svc = breakerLayer({ breaker, fallback, service: 'reviews', now: clock })(async () => {
    calls++;
    return { status: 500, headers: {}, body: new PassThrough() };
  });
  const first = await svc(request());
  assert.equal(first.headers[FALLBACK_HEADER], 'failure', 'a 5xx with a fallback is replaced');
  assert.equal(await readBody(first), 'from ratings-cache');
  await svc(request());
  assert.equal(breaker.state, 'open');
  const req = request();
  const res = await svc(req);
  assert.equal(calls, 2);
  assert.equal(res.headers[FALLBACK_HEADER], 'circuit-open');
  assert.equal(req.ctx.notes.fallback, 'circuit-open');
  assert.equal(res.synthetic, undefined, 'a real service answered');
  assert.deepEqual(seen, ['/reviews/1', '/reviews/1', '/reviews/1']);
});

test('HEXMESH_ERR_TIMEOUT is recorded as a timeout and answered by the fallback', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 10 });
  const svc = breakerLayer({
    breaker,
    fallback: staticFallback({ status: 200, body: '' }),
    service: 'reviews',
  })(async () => {
    throw new HexmeshError('HEXMESH_ERR_TIMEOUT', 'request to reviews timed out after 15000 ms');
  });
  const res = await svc(request());
  assert.equal(res.headers[FALLBACK_HEADER], 'timeout');
  assert.equal(res.body, null);
  assert.equal(breaker.snapshot().timeout, 1);
});

test('gRPC: a failing status in the trailers is counted when the body ends, not before', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 2, errorThresholdPercent: 50 });
  const bulkhead = new Bulkhead({ maxRequests: 4 });
  const bodies: PassThrough[] = [];
  const responses: MeshResponse[] = [];
  const svc = breakerLayer({ breaker, bulkhead, service: 'reviews' })(async () => {
    const body = new PassThrough();
    const res: MeshResponse = { status: 200, headers: { 'content-type': 'application/grpc' }, body };
    bodies.push(body);
    responses.push(res);
    return res;
  });

  const ok = await svc(request({ grpc: true }));
  const bad = await svc(request({ grpc: true }));
  assert.equal(bulkhead.active, 2, 'streaming responses hold their slots');
  assert.equal(breaker.snapshot().total, 0, 'nothing recorded before the trailers exist');

  const okRead = readBody(ok);
  responses[0].trailers = { 'grpc-status': '0' };
  bodies[0].end(Buffer.from([0, 0, 0, 0, 0]));
  await okRead;
  const badRead = readBody(bad);
  responses[1].trailers = { 'grpc-status': '14', 'grpc-message': 'unavailable' };
  bodies[1].end();
  await badRead;

  const snap = breaker.snapshot();
  assert.equal(snap.success, 1);
  assert.equal(snap.failure, 1);
  assert.equal(breaker.state, 'open');
  assert.equal(bulkhead.active, 0);
});

test('gRPC: a trailers-only failure (grpc-status in headers) counts at once', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 1 });
  const svc = breakerLayer({ breaker, service: 'reviews' })(async () => ({
    status: 200,
    headers: { 'content-type': 'application/grpc', 'grpc-status': '8' },
    body: null,
  }));
  await svc(request({ grpc: true }));
  assert.equal(breaker.state, 'open');
  // Not-a-failure statuses (NOT_FOUND) do not count as errors.
  const b2 = new CircuitBreaker({ requestVolumeThreshold: 1 });
  const svc2 = breakerLayer({ breaker: b2, service: 'reviews' })(async () => ({
    status: 200,
    headers: { 'grpc-status': '5' },
    body: null,
  }));
  await svc2(request({ grpc: true }));
  assert.equal(b2.state, 'closed');
  assert.equal(b2.snapshot().success, 1);
});

test('client abort mid-body: slot released and outcome settled exactly once, not counted', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 1 });
  const bulkhead = new Bulkhead({ maxRequests: 2, maxPending: 0 });
  const body = new PassThrough();
  const { svc: holdInner, held } = heldService();
  const holding = breakerLayer({ breaker, bulkhead, service: 'reviews' })(holdInner);
  const streaming = breakerLayer({ breaker, bulkhead, service: 'reviews' })(async () => ({
    status: 200,
    headers: {},
    body,
  }));
  const other = holding(request());
  const ac = new AbortController();
  const res = await streaming(request({ signal: ac.signal }));
  assert.equal(bulkhead.active, 2);
  ac.abort();
  // The listener destroys the body when the client goes: error, then close.
  res.body!.destroy(new Error('client went away'));
  await new Promise((r) => setImmediate(r));
  assert.equal(bulkhead.active, 1, 'released once: the held request still counts');
  assert.equal(breaker.snapshot().total, 0, 'a client abort says nothing about the destination');
  const p = holding(request());
  await assert.rejects(holding(request()), isCode('HEXMESH_ERR_OVERLOADED'));
  held[0].answer(respond(200));
  held[1].answer(respond(200));
  await Promise.all([other, p]);
  assert.equal(bulkhead.active, 0);
});

test('client abort while the call is running: the error passes through, nothing counted', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 1 });
  const bulkhead = new Bulkhead({ maxRequests: 1 });
  const fallback = staticFallback({ status: 200, body: 'fallback' });
  const svc = breakerLayer({ breaker, bulkhead, fallback, service: 'reviews' })(
    (req) =>
      new Promise((_, reject) => {
        req.ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      }),
  );
  const ac = new AbortController();
  const p = svc(request({ signal: ac.signal }));
  ac.abort();
  await assert.rejects(p, /aborted/, 'no fallback for a client that is gone');
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.snapshot().total, 0);
  assert.equal(bulkhead.active, 0);
});

test('upstream reset mid-body counts as a failure and releases the slot', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 1 });
  const bulkhead = new Bulkhead({ maxRequests: 1 });
  const body = new PassThrough();
  const svc = breakerLayer({ breaker, bulkhead, service: 'reviews' })(async () => ({
    status: 200,
    headers: {},
    body,
  }));
  const res = await svc(request());
  const read = readBody(res);
  body.destroy(new Error('ECONNRESET'));
  await assert.rejects(read, /ECONNRESET/);
  assert.equal(bulkhead.active, 0);
  assert.equal(breaker.state, 'open');
});

test('client abort while queued: no slot leaked, nothing counted', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 1 });
  const bulkhead = new Bulkhead({ maxRequests: 1, maxPending: 1 });
  const { svc: inner, held } = heldService();
  const svc = breakerLayer({ breaker, bulkhead, service: 'reviews' })(inner);
  const first = svc(request());
  const ac = new AbortController();
  const queued = svc(request({ signal: ac.signal }));
  assert.equal(bulkhead.pending, 1);
  ac.abort(new Error('client gone'));
  await assert.rejects(queued, /client gone/);
  assert.equal(bulkhead.pending, 0);
  held[0].answer(respond(200));
  await first;
  assert.equal(bulkhead.active, 0);
  assert.equal(breaker.snapshot().total, 1);
  assert.equal(held.length, 1, 'the aborted request never reached the service');
});

test('deadline passing while queued is a timeout', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 5 });
  const bulkhead = new Bulkhead({ maxRequests: 1, maxPending: 1 });
  const { svc: inner, held } = heldService();
  const svc = breakerLayer({ breaker, bulkhead, service: 'reviews' })(inner);
  const first = svc(request());
  await within(
    assert.rejects(svc(request({ deadline: performance.now() + 20 })), isCode('HEXMESH_ERR_TIMEOUT')),
    5000,
  );
  assert.equal(breaker.snapshot().timeout, 1);
  held[0].answer(respond(200));
  await first;
  assert.equal(bulkhead.active, 0);
});

test('4xx-class errors from inner layers are not counted against the destination', async () => {
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 1 });
  const svc = breakerLayer({ breaker, service: 'reviews' })(async () => {
    throw new HexmeshError('HEXMESH_ERR_DENIED', 'denied');
  });
  await assert.rejects(svc(request()), isCode('HEXMESH_ERR_DENIED'));
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.snapshot().total, 0);
});

test('a service fallback spec needs a resolver', () => {
  assert.throws(() => fallbackFromSpec({ service: 'reviews-cache' }), isCode('HEXMESH_ERR_CONFIG_INVALID'));
  assert.equal(fallbackFromSpec(undefined), undefined);
  assert.ok(fallbackFromSpec({ service: 'reviews-cache', port: 80 }, () => async () => respond(200)));
});

test('a 5xx replaced by the fallback has its body discarded without an unhandled error (undici bodies emit one on destroy)', async () => {
  // Like the HTTP/1 transport's body: destroying it before its end emits 'error'.
  class AbortingBody extends Readable {
    override _read(): void {}
    override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
      cb(err ?? new Error('aborted'));
    }
  }
  const body = new AbortingBody();
  const breaker = new CircuitBreaker({ requestVolumeThreshold: 100, sleepWindow: 5000 });
  const fallback = staticFallback({ status: 200, body: 'fallback' });
  const svc = breakerLayer({ breaker, fallback, service: 'reviews' })(async () => ({
    status: 503,
    headers: {},
    body,
  }));
  const res = await svc(request());
  assert.equal(await readBody(res), 'fallback');
  // An 'error' without a listener would have been thrown by now (uncaught: the test fails).
  await new Promise((r) => setImmediate(r));
  assert.ok(body.destroyed);
});
