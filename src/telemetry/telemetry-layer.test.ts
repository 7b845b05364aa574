import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { MeshResponse, Service } from '../proxy/core/dispatch.ts';
import { ProxyMetrics } from './metrics.ts';
import { telemetryLayer } from './telemetry-layer.ts';
import { meshRequest, samples, scrape } from './test-support.ts';

const OUT_LABELS = 'direction="outbound",src_service="web",dst_service="api",route="shop/api"';

function fakeClock(): { now: () => number; set(ms: number): void } {
  let t = 0;
  return { now: () => t, set: (ms) => (t = ms) };
}

async function drain(body: Readable | null): Promise<string> {
  if (body === null) return '';
  let s = '';
  for await (const chunk of body) s += String(chunk);
  return s;
}

test('a streamed response is recorded when its body ends, with its duration, and is never switched to flowing', async () => {
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false });
  const clock = fakeClock();
  const body = new PassThrough();
  const inner: Service = async () => ({ status: 201, headers: { 'content-type': 'text/plain' }, body });
  const svc = telemetryLayer(metrics, undefined, { now: clock.now })(inner);

  const res = await svc(meshRequest({ start: 1000 }));
  body.write('hello ');
  clock.set(1003); // 3 ms after arrival, the body is still streaming
  assert.equal(body.readableFlowing, null, 'the layer must not put the body into flowing mode');
  let text = (await scrape(metrics)).text;
  assert.deepEqual(samples(text, 'hexmesh_requests_total'), []);
  assert.ok(samples(text, 'hexmesh_request_duration_seconds_count').length === 0);

  clock.set(1004); // ends 4 ms after arrival
  body.end('world');
  assert.equal(await drain(res.body), 'hello world', 'no data lost to the telemetry listeners');
  text = (await scrape(metrics)).text;
  assert.deepEqual(samples(text, 'hexmesh_requests_total'), [
    `hexmesh_requests_total{${OUT_LABELS},status_code="201",grpc_status="",tls="false"} 1`,
  ]);
  const buckets = samples(text, 'hexmesh_request_duration_seconds_bucket');
  assert.ok(
    buckets.includes(`hexmesh_request_duration_seconds_bucket{le="0.0025",${OUT_LABELS},tls="false"} 0`),
  );
  assert.ok(
    buckets.includes(`hexmesh_request_duration_seconds_bucket{le="0.005",${OUT_LABELS},tls="false"} 1`),
  );
  assert.ok(
    buckets.includes(`hexmesh_request_duration_seconds_bucket{le="+Inf",${OUT_LABELS},tls="false"} 1`),
  );
  assert.deepEqual(samples(text, 'hexmesh_request_duration_seconds_sum'), [
    `hexmesh_request_duration_seconds_sum{${OUT_LABELS},tls="false"} 0.004`,
  ]);
});

test('grpc-status comes from trailers at body end, or from headers of a trailers-only response', async () => {
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false });
  const inner: Service = async (req) => {
    if (req.path.endsWith('/TrailersOnly')) {
      return { status: 200, headers: { 'content-type': 'application/grpc', 'grpc-status': '5' }, body: null };
    }
    const body = new PassThrough();
    const res: MeshResponse = { status: 200, headers: { 'content-type': 'application/grpc' }, body };
    setImmediate(() => {
      body.write(Buffer.from([0, 0, 0, 0, 0]));
      res.trailers = { 'grpc-status': '14', 'grpc-message': 'unavailable' };
      body.end();
    });
    return res;
  };
  const svc = telemetryLayer(metrics)(inner);
  const grpc = { grpc: true, method: 'POST', protocol: 'http2' as const };
  await drain((await svc(meshRequest({ tls: true }, { ...grpc, path: '/shop.Cart/Add' }))).body);
  await drain((await svc(meshRequest({ tls: true }, { ...grpc, path: '/shop.Cart/TrailersOnly' }))).body);

  const text = (await scrape(metrics)).text;
  assert.deepEqual(samples(text, 'hexmesh_requests_total').sort(), [
    `hexmesh_requests_total{${OUT_LABELS},status_code="200",grpc_status="14",tls="true"} 1`,
    `hexmesh_requests_total{${OUT_LABELS},status_code="200",grpc_status="5",tls="true"} 1`,
  ]);
});

test('a thrown error is recorded with the status the client gets, then rethrown', async () => {
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false });
  const err = new HexmeshError('HEXMESH_ERR_CONNECT_FAILED', 'connect refused by 127.0.0.1:1');
  const svc = telemetryLayer(metrics)(async () => {
    throw err;
  });
  await assert.rejects(svc(meshRequest()), (e) => e === err);
  await assert.rejects(svc(meshRequest({}, { grpc: true, method: 'POST' })), (e) => e === err);
  await assert.rejects(
    telemetryLayer(metrics)(async () => {
      throw new TypeError('bug');
    })(meshRequest({ direction: 'inbound', srcService: '', dstService: 'web', route: 'default' })),
    TypeError,
  );

  const text = (await scrape(metrics)).text;
  assert.deepEqual(samples(text, 'hexmesh_requests_total').sort(), [
    'hexmesh_requests_total{direction="inbound",src_service="unknown",dst_service="web",route="default",status_code="500",grpc_status="",tls="false"} 1',
    `hexmesh_requests_total{${OUT_LABELS},status_code="200",grpc_status="14",tls="false"} 1`,
    `hexmesh_requests_total{${OUT_LABELS},status_code="502",grpc_status="",tls="false"} 1`,
  ]);
  assert.deepEqual(samples(text, 'hexmesh_synthetic_responses_total').sort(), [
    'hexmesh_synthetic_responses_total{direction="inbound",dst_service="web",code="internal"} 1',
    'hexmesh_synthetic_responses_total{direction="outbound",dst_service="api",code="connect-failed"} 2',
  ]);
});

test('synthetic responses, retry notes and budget notes are counted once per request', async () => {
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false });
  const svc = telemetryLayer(metrics)(async (req) => {
    req.ctx.notes.retries = 2;
    req.ctx.notes.retryReason = 'connect-failed';
    req.ctx.notes.budgetExhausted = true;
    return {
      status: 503,
      headers: { 'x-hexmesh-error': 'circuit-open' },
      body: Readable.from(['circuit open\n']),
      synthetic: 'circuit-open',
    };
  });
  await drain((await svc(meshRequest())).body);
  const text = (await scrape(metrics)).text;
  assert.deepEqual(samples(text, 'hexmesh_synthetic_responses_total'), [
    'hexmesh_synthetic_responses_total{direction="outbound",dst_service="api",code="circuit-open"} 1',
  ]);
  assert.deepEqual(samples(text, 'hexmesh_retries_total'), [
    'hexmesh_retries_total{dst_service="api",route="shop/api",reason="connect-failed"} 2',
  ]);
  assert.deepEqual(samples(text, 'hexmesh_retry_budget_exhausted_total'), [
    'hexmesh_retry_budget_exhausted_total{dst_service="api"} 1',
  ]);
});

test('a body that fails or is destroyed early is recorded exactly once', async () => {
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false });
  const bodies: PassThrough[] = [];
  const svc = telemetryLayer(metrics)(async () => {
    const body = new PassThrough();
    bodies.push(body);
    return { status: 200, headers: {}, body };
  });
  const failed = await svc(meshRequest());
  const aborted = await svc(meshRequest());
  const errored = new Promise((resolve) => failed.body!.once('error', resolve));
  bodies[0].destroy(new Error('upstream reset mid-body'));
  await errored;
  const closed = new Promise((resolve) => aborted.body!.once('close', resolve));
  bodies[1].destroy();
  await closed;
  await new Promise((resolve) => setImmediate(resolve));

  const text = (await scrape(metrics)).text;
  assert.deepEqual(samples(text, 'hexmesh_requests_total'), [
    `hexmesh_requests_total{${OUT_LABELS},status_code="200",grpc_status="",tls="false"} 2`,
  ]);
  assert.deepEqual(samples(text, 'hexmesh_request_duration_seconds_count'), [
    `hexmesh_request_duration_seconds_count{${OUT_LABELS},tls="false"} 2`,
  ]);
  for (const b of bodies) assert.equal(b.listenerCount('end'), 0, 'listeners are removed once recorded');
});
