import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import { AccessLog, type AccessLogEntry } from './access-log.ts';
import { ProxyMetrics } from './metrics.ts';
import { stripQuery, telemetryLayer, traceId } from './telemetry-layer.ts';
import { meshRequest } from './test-support.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

test('one valid JSON line per request, written to a file, with no header values and no query strings', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'hexmesh-access-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'access.log');
  const log = new AccessLog({ destination: file });
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false });
  let clock = 0;
  const svc = telemetryLayer(metrics, log, { now: () => clock })(async (req) => {
    if (req.path.startsWith('/fail')) throw new HexmeshError('HEXMESH_ERR_TIMEOUT', 'timeout after 15000 ms');
    req.ctx.notes.retries = 1;
    const body = Readable.from([Buffer.from('{"ok":true}')]);
    return { status: 200, headers: { 'content-length': '11', 'set-cookie': 'sid=RESPONSECOOKIE' }, body };
  });

  const secrets = {
    authorization: 'Bearer SECRETTOKEN',
    cookie: 'session=SECRETCOOKIE',
    'x-api-key': 'SECRETKEY',
    traceparent: `00-${TRACE}-00f067aa0ba902b7-01`,
  };
  clock = 12.3456;
  const res = await svc(
    meshRequest(
      { start: 0, peerIdentity: 'spiffe://mesh.local/ns/shop/sa/web' },
      {
        method: 'POST',
        authority: 'user:PASSWORD@api.shop:8080',
        path: '/orders/7?token=SECRETQUERY&x=1',
        headers: { ...secrets, 'content-length': '42' },
      },
    ),
  );
  for await (const _ of res.body!);
  await assert.rejects(svc(meshRequest({}, { path: '/fail?api_key=SECRETQUERY2' })), HexmeshError);
  await log.close();

  const raw = await readFile(file, 'utf8');
  for (const secret of ['SECRET', 'PASSWORD', 'RESPONSECOOKIE', 'Bearer', '?']) {
    assert.ok(!raw.includes(secret), `access log leaked ${secret}: ${raw}`);
  }
  const lines = raw.split('\n');
  assert.equal(lines.pop(), '', 'every line ends with a newline');
  assert.equal(lines.length, 2);
  const [ok, failed] = lines.map((l) => JSON.parse(l) as AccessLogEntry);
  assert.ok(!Number.isNaN(Date.parse(ok.time)));
  assert.deepEqual(
    { ...ok, time: '' },
    {
      time: '',
      direction: 'outbound',
      src_service: 'web',
      dst_service: 'api',
      peer_identity: 'spiffe://mesh.local/ns/shop/sa/web',
      route: 'shop/api',
      method: 'POST',
      authority: 'api.shop:8080',
      path: '/orders/7',
      protocol: 'http1',
      status: 200,
      grpc_status: null,
      duration_ms: 12.346,
      request_bytes: 42,
      response_bytes: 11,
      upstream: '127.0.0.1:9000',
      retries: 1,
      error: null,
      outcome: 'end',
      tls: false,
      trace_id: TRACE,
    },
  );
  assert.equal(failed.path, '/fail');
  assert.equal(failed.status, 504);
  assert.equal(failed.error, 'timeout');
  assert.equal(failed.trace_id, null);
});

test('lines are buffered and written in batches, and dropped (counted) when the sink cannot keep up', async () => {
  const writes: string[] = [];
  // A sink that takes one write and then applies back-pressure until we release it.
  let release!: () => void;
  const sink = new Writable({
    highWaterMark: 1,
    write(chunk, _enc, cb) {
      writes.push(String(chunk));
      release = cb;
    },
  });
  const entry = (i: number) => ({ ...sampleEntry(), path: `/n/${i}` });
  const lineBytes = JSON.stringify(entry(10)).length + 1;
  const log = new AccessLog({ destination: sink, maxBufferedBytes: Math.floor(lineBytes * 4.5) });

  for (let i = 0; i < 3; i++) log.write(entry(i));
  assert.equal(writes.length, 0, 'nothing is written synchronously');
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 1, 'one batch per event-loop turn');
  assert.equal(writes[0].split('\n').length - 1, 3);

  // The sink is blocked: lines queue up to maxBufferedBytes, then are dropped.
  for (let i = 3; i < 20; i++) log.write(entry(i));
  assert.equal(log.dropped, 13, '4 lines fit in the buffer while the sink is blocked');
  const kept = 4;
  release(); // the first batch is done: 'drain' sends the queued lines as the second batch
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 2);
  release();
  await log.close();
  const all = writes.join('').split('\n').filter(Boolean);
  assert.equal(all.length, 3 + kept);
  for (const l of all) JSON.parse(l);
  log.write(entry(99));
  assert.equal(log.dropped, 17 - kept + 1, 'writes after close are dropped');
});

test('a streaming response is logged only after its body ends', async () => {
  const chunks: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (c) => chunks.push(String(c)));
  const log = new AccessLog({ destination: sink });
  const body = new PassThrough();
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false });
  const res = await telemetryLayer(metrics, log)(async () => ({ status: 200, headers: {}, body }))(
    meshRequest(),
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(chunks.length, 0);
  res.body!.resume();
  body.end('x');
  await new Promise((r) => res.body!.once('end', r));
  await log.flush();
  assert.equal(chunks.length, 1);
  assert.equal((JSON.parse(chunks[0]) as AccessLogEntry).outcome, 'end');
});

test('stripQuery and traceId', () => {
  assert.equal(stripQuery('/a/b?c=d'), '/a/b');
  assert.equal(stripQuery('/a#frag?x'), '/a');
  assert.equal(stripQuery('/plain'), '/plain');
  assert.equal(traceId(`00-${TRACE}-00f067aa0ba902b7-01`), TRACE);
  assert.equal(traceId(`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`), null, 'all-zero trace id is invalid');
  assert.equal(traceId('garbage'), null);
  assert.equal(traceId(undefined), null);
});

function sampleEntry(): AccessLogEntry {
  return {
    time: new Date(0).toISOString(),
    direction: 'inbound',
    src_service: 'web',
    dst_service: 'api',
    peer_identity: null,
    route: 'default',
    method: 'GET',
    authority: 'api',
    path: '/',
    protocol: 'http1',
    status: 200,
    grpc_status: null,
    duration_ms: 1,
    request_bytes: null,
    response_bytes: null,
    upstream: null,
    retries: 0,
    error: null,
    outcome: 'end',
    tls: false,
    trace_id: null,
  };
}
