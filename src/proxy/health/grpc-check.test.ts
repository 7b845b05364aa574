import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { runCheck } from './run-check.ts';
import { decodeHealthStatus, encodeHealthRequest } from './grpc-check.ts';

const protoPath = fileURLToPath(new URL('./fixtures/health.proto', import.meta.url));
const def = protoLoader.loadSync(protoPath, { enums: String, defaults: true });
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const health = (grpc.loadPackageDefinition(def) as any).grpc.health.v1
  .Health as grpc.ServiceClientConstructor;

/** Status per service name, as a real grpc.health.v1 implementation keeps it. */
const statuses = new Map<string, string>([
  ['', 'SERVING'],
  ['reviews', 'SERVING'],
  ['ratings', 'NOT_SERVING'],
]);

async function start(withHealth: boolean): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  if (withHealth)
    server.addService(health.service, {
      Check(
        call: grpc.ServerUnaryCall<{ service: string }, unknown>,
        cb: grpc.sendUnaryData<{ status: string }>,
      ) {
        const s = statuses.get(call.request.service);
        if (s === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        else cb(null, { status: s });
      },
    });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return { server, port };
}

const { server, port } = await start(true);
after(() => server.forceShutdown());

test('gRPC check passes on SERVING (whole server and named service)', async () => {
  assert.deepEqual(await runCheck({ type: 'grpc', timeout: 2000 }, '127.0.0.1', port), {
    status: 'passing',
    detail: 'server SERVING',
  });
  assert.deepEqual(
    await runCheck({ type: 'grpc', grpcService: 'reviews', timeout: 2000 }, '127.0.0.1', port),
    {
      status: 'passing',
      detail: 'service "reviews" SERVING',
    },
  );
});

test('gRPC check fails on NOT_SERVING', async () => {
  assert.deepEqual(
    await runCheck({ type: 'grpc', grpcService: 'ratings', timeout: 2000 }, '127.0.0.1', port),
    {
      status: 'critical',
      detail: 'service "ratings" NOT_SERVING',
    },
  );
});

test('gRPC check follows a status change', async () => {
  statuses.set('flappy', 'SERVING');
  const spec = { type: 'grpc', grpcService: 'flappy', timeout: 2000 } as const;
  assert.equal((await runCheck(spec, '127.0.0.1', port)).status, 'passing');
  statuses.set('flappy', 'NOT_SERVING');
  assert.equal((await runCheck(spec, '127.0.0.1', port)).status, 'critical');
});

test('gRPC check fails on an unknown service (NOT_FOUND)', async () => {
  const r = await runCheck({ type: 'grpc', grpcService: 'nope', timeout: 2000 }, '127.0.0.1', port);
  assert.equal(r.status, 'critical');
  assert.match(r.detail, /^gRPC NOT_FOUND \(service "nope" unknown\): unknown service$/);
});

test('gRPC check fails against a server without the health service', async () => {
  const bare = await start(false);
  try {
    const r = await runCheck({ type: 'grpc', timeout: 2000 }, '127.0.0.1', bare.port);
    assert.equal(r.status, 'critical');
    assert.match(r.detail, /^gRPC UNIMPLEMENTED/);
  } finally {
    bare.server.forceShutdown();
  }
});

test('gRPC check fails on a closed port', async () => {
  const gone = await start(true);
  gone.server.forceShutdown();
  const r = await runCheck({ type: 'grpc', timeout: 2000 }, '127.0.0.1', gone.port);
  assert.deepEqual(r, { status: 'critical', detail: `connect refused by 127.0.0.1:${gone.port}` });
});

test('hand-encoded health messages: request layout, response decoding edge cases', () => {
  // Hand-encoded request: prefix + field 1.
  const frame = encodeHealthRequest('reviews');
  assert.equal(frame[0], 0);
  assert.equal(frame.readUInt32BE(1), frame.length - 5);
  assert.deepEqual([...frame.subarray(5, 7)], [0x0a, 7]);
  assert.equal(frame.subarray(7).toString(), 'reviews');
  assert.equal(encodeHealthRequest('').length, 5);
  // Responses: field 1 varint; absent = UNKNOWN; unknown fields skipped.
  assert.equal(decodeHealthStatus(Buffer.from([0x08, 0x01])), 1);
  assert.equal(decodeHealthStatus(Buffer.from([])), 0);
  assert.equal(decodeHealthStatus(Buffer.from([0x12, 0x02, 0x61, 0x62, 0x08, 0x02])), 2);
  assert.throws(() => decodeHealthStatus(Buffer.from([0x08])), /truncated/);
});

test('gRPC check: an answer that streams without end is critical once past 64 KiB, not buffered', async () => {
  let sent = 0;
  const app = http2.createServer();
  app.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    const chunk = Buffer.alloc(16 * 1024);
    const pump = () => {
      while (sent < 64 * 1024 * 1024 && !stream.destroyed) {
        sent += chunk.length;
        if (!stream.write(chunk)) return void stream.once('drain', pump);
      }
      if (!stream.destroyed) stream.end();
    };
    stream.on('error', () => {});
    pump();
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;
  try {
    const r = await runCheck({ type: 'grpc', timeout: 10_000 }, '127.0.0.1', appPort);
    assert.equal(r.status, 'critical');
    assert.match(r.detail, /larger than 65536 bytes/);
    assert.ok(sent < 8 * 1024 * 1024, `the app got to send ${sent} bytes`);
  } finally {
    await new Promise<void>((r) => app.close(() => r()));
  }
});
