/**
 * The proxy enforces the caller's `grpc-timeout` itself (issue 9): a raw node:http2 client that
 * never enforces a deadline sends grpc-timeout: 200m through two sidecars to a gRPC server that
 * never answers, and gets a trailers-only DEADLINE_EXCEEDED long before the 15 s route timeout;
 * the server sees the remaining budget, not the original value.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { within } from '../support/clients.ts';
import { startPair, type Pair } from '../support/mesh.ts';
import { encodeGrpcTimeout, parseGrpcTimeout } from '../../src/proxy/timeout/grpc-timeout.ts';

let server: http2.Http2Server;
let mesh: Pair;
/** grpc-timeout values the server saw. */
const seen: string[] = [];
const sessions = new Set<http2.ServerHttp2Session>();
/** Stalled server streams that were closed (the proxy cut them at the deadline). */
let stalledClosed = 0;

before(async () => {
  // A gRPC server that takes every call and never answers it.
  server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    seen.push(String(headers['grpc-timeout']));
    stream.resume();
    if (headers[':path'] === '/test.Slow/Stall') {
      // Headers and one message at once, then nothing: the response never finishes.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.write(Buffer.from([0, 0, 0, 0, 1, 0x2a]));
      stream.once('close', () => stalledClosed++);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  mesh = await startPair({
    service: 'slow',
    appPort: (server.address() as AddressInfo).port,
    appProtocol: 'grpc',
  });
});

after(async () => {
  await mesh.close();
  for (const s of sessions) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

/** One unary-shaped gRPC call over a raw node:http2 session; resolves with the response headers. */
async function call(
  port: number,
  timeout: string,
): Promise<{ headers: http2.IncomingHttpHeaders; ms: number }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  const t0 = performance.now();
  try {
    const stream = session.request({
      ':method': 'POST',
      ':path': '/test.Slow/Never',
      ':authority': 'slow',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': timeout,
    });
    stream.on('error', () => {});
    // One empty message (compressed flag 0, length 0).
    stream.end(Buffer.alloc(5));
    const headers = await within(
      new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve)),
      12_000,
      'response headers',
    );
    stream.resume();
    return { headers, ms: performance.now() - t0 };
  } finally {
    session.destroy();
  }
}

test('grpc-timeout: 200m to a server that never answers → trailers-only DEADLINE_EXCEEDED from the proxy', async () => {
  const { headers, ms } = await call(mesh.client.addr.outbound.port, '200m');
  assert.equal(headers[':status'], 200);
  assert.equal(headers['grpc-status'], '4', 'DEADLINE_EXCEEDED');
  assert.equal(headers['x-hexmesh-error'], 'timeout');
  // The route timeout below runs to the same deadline; either may be the one that fires.
  assert.match(String(headers['grpc-message']), /^timeout after \d+ ms( \(grpc-timeout\))? calling slow$/);
  // The route timeout (15 s) is not what answered; a generous bound for a loaded machine.
  assert.ok(ms < 10_000, `answered after ${Math.round(ms)} ms`);
  // The server got the budget left after two hops, never more than the caller's 200 ms.
  const last = parseGrpcTimeout(seen.at(-1));
  assert.ok(last !== undefined && last > 0 && last <= 200, `server saw grpc-timeout ${seen.at(-1)}`);
});

test('grpc-timeout: the server-side sidecar enforces it too (a caller straight to the inbound listener)', async () => {
  const { headers } = await call(mesh.server.inboundPort, '150m');
  assert.equal(headers['grpc-status'], '4');
  assert.equal(headers['x-hexmesh-error'], 'timeout');
});

test('grpc-timeout: a response that started but never finishes ends with DEADLINE_EXCEEDED trailers at the deadline', async () => {
  const session = http2.connect(`http://127.0.0.1:${mesh.client.addr.outbound.port}`);
  session.on('error', () => {});
  try {
    const stream = session.request({
      ':method': 'POST',
      ':path': '/test.Slow/Stall',
      ':authority': 'slow',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': '300m',
    });
    stream.on('error', () => {});
    stream.end(Buffer.alloc(5));
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    const headers = await within(
      new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve)),
      10_000,
      'response headers',
    );
    assert.equal(headers['grpc-status'], undefined, 'not trailers-only: the server had answered');
    const trailers = await within(
      new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('trailers', resolve)),
      10_000,
      'trailers (the route timeout is 15 s)',
    );
    assert.equal(trailers['grpc-status'], '4');
    assert.equal(trailers['x-hexmesh-error'], 'timeout');
    assert.deepEqual(Buffer.concat(chunks), Buffer.from([0, 0, 0, 0, 1, 0x2a]), 'the message before the cut');
    const until = Date.now() + 5000;
    while (stalledClosed === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(stalledClosed, 1, 'the server stream was cut');
  } finally {
    session.destroy();
  }
});

test('grpc-timeout values: every unit parses; budgets encode in the finest unit that fits 8 digits', () => {
  assert.equal(parseGrpcTimeout('1H'), 3_600_000);
  assert.equal(parseGrpcTimeout('2M'), 120_000);
  assert.equal(parseGrpcTimeout('3S'), 3000);
  assert.equal(parseGrpcTimeout('200m'), 200);
  assert.equal(parseGrpcTimeout('1500u'), 1.5);
  assert.equal(parseGrpcTimeout('2000000n'), 2);
  for (const bad of ['', 'm', '200', '200x', '123456789m', '-1m', '1.5S', ' 1S'])
    assert.equal(parseGrpcTimeout(bad), undefined, bad);
  assert.equal(encodeGrpcTimeout(199.9994), '199999u');
  assert.equal(encodeGrpcTimeout(-5), '0u');
  assert.equal(encodeGrpcTimeout(150_000), '150000m');
  assert.equal(encodeGrpcTimeout(200_000_000), '200000S');
  for (const ms of [0.5, 7, 99_999, 1e9, 1e12]) {
    const back = parseGrpcTimeout(encodeGrpcTimeout(ms))!;
    assert.ok(back <= ms && back > ms * 0.99, `${ms} → ${encodeGrpcTimeout(ms)} → ${back}`);
  }
});
