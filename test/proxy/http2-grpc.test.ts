/**
 * HTTP/2 cleartext (prior knowledge) and gRPC end to end through two sidecars: curl and
 * node:http2 clients to h2c and HTTP/1.1 apps; @grpc/grpc-js client and server for every
 * call shape, errors, metadata and deadlines.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { curl, within } from '../support/clients.ts';
import { echoClient, startEchoServer, type EchoReply, type EchoRequest } from '../support/grpc.ts';
import { startHttpServer, startPair, startProxy, type Pair, type RunningProxy } from '../support/mesh.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** An h2c app: echoes bodies, answers with trailers. */
async function startH2App() {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    stream.on('error', () => {});
    if (path === '/cl-trailer') {
      // Announces trailers but has a Content-Length: an HTTP/1.1 client cannot get them.
      stream.respond({ ':status': 200, 'content-length': '5', trailer: 'x-t' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'x-t': '1' }));
      stream.end(headers[':method'] === 'HEAD' ? undefined : 'fixed');
      return;
    }
    if (path.startsWith('/echo')) {
      const h = createHash('sha256');
      let n = 0;
      stream.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'x-body-sha': h.digest('hex') }));
        stream.end(`${n}`);
      });
      return;
    }
    stream.respond(
      { ':status': 200, 'content-type': 'text/plain', 'x-app': 'h2' },
      { waitForTrailers: true },
    );
    stream.once('wantTrailers', () => stream.sendTrailers({ 'x-trailer': 'from-h2-app' }));
    stream.end(`h2 ${headers[':method']} ${path} authority=${headers[':authority']}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

/** One request over a node:http2 client session; collects body and trailers. */
async function h2Request(
  port: number,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer; trailers: http2.IncomingHttpHeaders }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  try {
    const stream = session.request(headers, { endStream: !body });
    if (body) stream.end(body);
    return await within(
      new Promise((resolve, reject) => {
        let resHeaders: http2.IncomingHttpHeaders = {};
        let trailers: http2.IncomingHttpHeaders = {};
        const parts: Buffer[] = [];
        stream.on('response', (h) => (resHeaders = h));
        stream.on('trailers', (t) => (trailers = t));
        stream.on('data', (d: Buffer) => parts.push(d));
        stream.on('end', () => resolve({ headers: resHeaders, body: Buffer.concat(parts), trailers }));
        stream.on('error', reject);
      }),
      10_000,
      'h2 response',
    );
  } finally {
    session.close();
  }
}

let h2app: Awaited<ReturnType<typeof startH2App>>;
let h1app: Awaited<ReturnType<typeof startHttpServer>>;
let h2mesh: Pair;
let h1mesh: Pair;

before(async () => {
  h2app = await startH2App();
  h2mesh = await startPair({ service: 'h2svc', appPort: h2app.port, appProtocol: 'http2' });
  h1app = await startHttpServer((req, res) => {
    if (req.url === '/chunked') {
      res.write('chunk one;');
      setTimeout(() => res.end('chunk two'), 20);
      return;
    }
    if (req.url === '/trailers') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-trailer' });
      res.write('h1 body');
      res.addTrailers({ 'x-trailer': 'from-h1-app' });
      res.end();
      return;
    }
    const h = createHash('sha256');
    req.on('data', (d: Buffer) => h.update(d));
    req.on('end', () =>
      res.end(`h1 ${req.method} ${req.url} host=${req.headers.host} sha=${h.digest('hex')}`),
    );
  });
  h1mesh = await startPair({ service: 'h1svc', appPort: h1app.port });
});

after(async () => {
  await h2mesh.close();
  await h1mesh.close();
  await h2app.close();
  await h1app.close();
});

test('curl --http2-prior-knowledge to an h2c app', async () => {
  const r = await curl([
    '--http2-prior-knowledge',
    '-H',
    'Host: h2svc',
    '-D',
    '-',
    `${h2mesh.client.outboundUrl}/hello`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.toString();
  assert.match(out, /^HTTP\/2 200/);
  assert.match(out, /x-app: h2/);
  assert.match(out, /h2 GET \/hello authority=h2svc/);
  assert.match(out, /x-trailer: from-h2-app/);
});

test('curl --http2-prior-knowledge to an HTTP/1.1 app, trailers included', async () => {
  const r = await curl([
    '--http2-prior-knowledge',
    '-H',
    'Host: h1svc',
    '-D',
    '-',
    `${h1mesh.client.outboundUrl}/trailers`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.toString();
  assert.match(out, /^HTTP\/2 200/);
  assert.match(out, /h1 body/);
  assert.match(out, /x-trailer: from-h1-app/);
});

test('node:http2 client: bodies and trailers to an h2c app', async () => {
  const big = randomBytes(3 << 20);
  const r = await h2Request(
    h2mesh.client.addr.outbound.port,
    { ':method': 'POST', ':path': '/echo', ':authority': 'h2svc' },
    big,
  );
  assert.equal(r.headers[':status'], 200);
  assert.equal(r.body.toString(), String(big.length));
  assert.equal(r.trailers['x-body-sha'], sha(big));
  const g = await h2Request(h2mesh.client.addr.outbound.port, { ':path': '/x?y=1', ':authority': 'h2svc' });
  assert.equal(g.body.toString(), 'h2 GET /x?y=1 authority=h2svc');
  assert.equal(g.trailers['x-trailer'], 'from-h2-app');
});

test('node:http2 client to an HTTP/1.1 app: body up, trailers down', async () => {
  const body = randomBytes(1 << 20);
  const r = await h2Request(
    h1mesh.client.addr.outbound.port,
    { ':method': 'PUT', ':path': '/up', ':authority': 'h1svc' },
    body,
  );
  assert.equal(r.headers[':status'], 200);
  assert.equal(r.body.toString(), `h1 PUT /up host=h1svc sha=${sha(body)}`);
  const t = await h2Request(h1mesh.client.addr.outbound.port, {
    ':path': '/trailers',
    ':authority': 'h1svc',
  });
  assert.equal(t.body.toString(), 'h1 body');
  assert.equal(t.trailers['x-trailer'], 'from-h1-app');
});

test('HTTP/2 responses without trailers end cleanly (END_STREAM, not a reset)', async () => {
  // An HTTP/1.1 app sends no trailers; a synthetic error has none either.
  const r = await curl([
    '--http2-prior-knowledge',
    '-H',
    'Host: h1svc',
    `${h1mesh.client.outboundUrl}/plain`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), /^h1 GET \/plain host=h1svc/);
  const c = await curl([
    '--http2-prior-knowledge',
    '-H',
    'Host: h1svc',
    `${h1mesh.client.outboundUrl}/chunked`,
  ]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout.toString(), 'chunk one;chunk two');
  const g = await h2Request(h1mesh.client.addr.outbound.port, { ':path': '/plain', ':authority': 'h1svc' });
  assert.match(g.body.toString(), /^h1 GET \/plain/);
  const e = await h2Request(h1mesh.client.addr.outbound.port, { ':path': '/', ':authority': 'nobody' });
  assert.equal(e.headers[':status'], 404);
  assert.equal(e.headers['x-hexmesh-error'], 'unknown-service');
  assert.match(e.body.toString(), /unknown service "nobody"/);
});

test('HTTP/1.1 client, h2c app announcing trailers on a fixed-length or HEAD response: no crash', async () => {
  const u = `${h2mesh.client.outboundUrl}/cl-trailer`;
  const r = await curl(['--http1.1', '-H', 'Host: h2svc', u]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'fixed');
  const h = await curl(['--http1.1', '-H', 'Host: h2svc', '-I', u]);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout.toString(), /^HTTP\/1.1 200/);
  // Both sidecars are still serving.
  const again = await curl(['--http1.1', '-H', 'Host: h2svc', `${h2mesh.client.outboundUrl}/ok`]);
  assert.equal(again.code, 0, again.stderr);
});

// ---------------------------------------------------------------- gRPC

let echo: Awaited<ReturnType<typeof startEchoServer>>;
let grpcMesh: Pair;
let empty: RunningProxy;

before(async () => {
  echo = await startEchoServer();
  grpcMesh = await startPair({
    service: 'echo',
    appPort: echo.port,
    appProtocol: 'grpc',
    servicePorts: [{ port: 50051, protocol: 'grpc' }],
  });
  empty = await startProxy({
    proxy: { service: 'client' },
    services: [{ name: 'nowhere', ports: [{ port: 50051, protocol: 'grpc' }], endpoints: [] }],
  });
});

after(async () => {
  await grpcMesh.close();
  await empty.close();
  echo.close();
});

type Unary = (
  req: EchoRequest,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: EchoReply) => void,
) => grpc.ClientUnaryCall;

function unary(client: grpc.Client, req: EchoRequest, md = new grpc.Metadata(), opts: grpc.CallOptions = {}) {
  let initial: grpc.Metadata | undefined;
  return new Promise<{ reply?: EchoReply; err?: grpc.ServiceError; initial?: grpc.Metadata }>((resolve) => {
    const call = (client as unknown as { Unary: Unary }).Unary.call(client, req, md, opts, (err, reply) =>
      resolve({ reply, err: err ?? undefined, initial }),
    );
    call.on('metadata', (m) => (initial = m));
  });
}

function withClient(t: { after(fn: () => void): void }, port: number, service: string) {
  const c = echoClient(port, service);
  t.after(() => c.close());
  return c;
}

test('gRPC unary through two sidecars', async (t) => {
  const c = withClient(t, grpcMesh.client.addr.outbound.port, 'echo');
  const r = await unary(c, { message: 'hi' });
  assert.equal(r.err, undefined);
  assert.equal(r.reply?.message, 'hi');
});

test('gRPC error status, message and trailing metadata are preserved', async (t) => {
  const c = withClient(t, grpcMesh.client.addr.outbound.port, 'echo');
  const r = await unary(c, { message: 'thing 42 (ünïcode %)', failCode: grpc.status.NOT_FOUND });
  assert.ok(r.err);
  assert.equal(r.err.code, grpc.status.NOT_FOUND);
  assert.equal(r.err.details, 'failed: thing 42 (ünïcode %)');
  assert.deepEqual(r.err.metadata.get('x-custom-trailer'), ['trailer-value']);
  assert.deepEqual(r.err.metadata.get('x-error-bin'), [Buffer.from([0, 1, 2, 255])]);
  assert.deepEqual(r.err.metadata.get('x-hexmesh-error'), [], 'the app’s error is not a proxy error');
});

test('gRPC request metadata reaches the server; initial metadata comes back', async (t) => {
  const c = withClient(t, grpcMesh.client.addr.outbound.port, 'echo');
  const md = new grpc.Metadata();
  md.set('x-request-id', 'abc-123');
  md.add('x-multi', 'one');
  md.add('x-multi', 'two');
  md.set('x-token-bin', Buffer.from([9, 8, 7]));
  const r = await unary(c, { message: 'md' }, md);
  assert.equal(r.err, undefined);
  assert.deepEqual(echo.seen.lastMetadata?.get('x-request-id'), ['abc-123']);
  assert.deepEqual(echo.seen.lastMetadata?.get('x-token-bin'), [Buffer.from([9, 8, 7])]);
  assert.deepEqual(String(echo.seen.lastMetadata?.get('x-multi')).split(/,\s*/).filter(Boolean), [
    'one',
    'two',
  ]);
  assert.deepEqual(r.initial?.get('x-request-id'), ['abc-123']);
});

test('gRPC server streaming of many messages, with trailing metadata', async (t) => {
  const c = withClient(t, grpcMesh.client.addr.outbound.port, 'echo');
  const n = 2000;
  const call = (
    c as unknown as { ServerStream(r: EchoRequest): grpc.ClientReadableStream<EchoReply> }
  ).ServerStream({
    message: 'm'.repeat(100),
    count: n,
  });
  const indexes: number[] = [];
  const status = await within(
    new Promise<grpc.StatusObject>((resolve, reject) => {
      call.on('data', (r: EchoReply) => indexes.push(r.index));
      call.on('status', resolve);
      call.on('error', reject);
    }),
    15_000,
    'server stream',
  );
  assert.equal(status.code, grpc.status.OK);
  assert.deepEqual(status.metadata.get('x-sent'), [String(n)]);
  assert.equal(indexes.length, n);
  assert.ok(
    indexes.every((v, i) => v === i),
    'in order',
  );
});

test('gRPC client streaming', async (t) => {
  const c = withClient(t, grpcMesh.client.addr.outbound.port, 'echo');
  const reply = await within(
    new Promise<EchoReply>((resolve, reject) => {
      const call = (
        c as unknown as {
          ClientStream(
            cb: (e: grpc.ServiceError | null, r: EchoReply) => void,
          ): grpc.ClientWritableStream<EchoRequest>;
        }
      ).ClientStream((e, r) => (e ? reject(e) : resolve(r)));
      for (let i = 0; i < 100; i++) call.write({ message: String(i) });
      call.end();
    }),
    10_000,
    'client stream',
  );
  assert.equal(reply.index, 100);
  assert.equal(reply.message, Array.from({ length: 100 }, (_, i) => String(i)).join(','));
});

test('gRPC bidi streaming, interleaved: each reply arrives before the next request is sent', async (t) => {
  const c = withClient(t, grpcMesh.client.addr.outbound.port, 'echo');
  const call = (c as unknown as { Bidi(): grpc.ClientDuplexStream<EchoRequest, EchoReply> }).Bidi();
  const replies: EchoReply[] = [];
  let waiting: ((r: EchoReply) => void) | undefined;
  call.on('data', (r: EchoReply) => {
    replies.push(r);
    waiting?.(r);
  });
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => {});
  for (let i = 0; i < 20; i++) {
    const next = new Promise<EchoReply>((r) => (waiting = r));
    call.write({ message: `m${i}` });
    // Would time out if any hop held the request stream back until it ended.
    const r = await within(next, 5000, `reply ${i}`);
    assert.equal(r.message, `echo:m${i}`);
    assert.equal(r.index, i);
  }
  call.end();
  const status = await within(ended, 5000, 'bidi status');
  assert.equal(status.code, grpc.status.OK);
  assert.equal(replies.length, 20);
});

test('gRPC deadline: grpc-timeout reaches the server, and expiry gives DEADLINE_EXCEEDED and cancels the server call', async (t) => {
  const c = withClient(t, grpcMesh.client.addr.outbound.port, 'echo');
  const ok = await unary(c, { message: 'd' }, new grpc.Metadata(), { deadline: Date.now() + 5000 });
  assert.equal(ok.err, undefined);
  const seenDeadline = Number(ok.reply?.deadlineMs);
  assert.ok(seenDeadline > 3000 && seenDeadline <= 5000, `server saw a deadline ${seenDeadline} ms away`);

  const cancelledBefore = echo.seen.cancelled;
  const t0 = performance.now();
  const r = await unary(c, { message: 'slow', delayMs: 3000 }, new grpc.Metadata(), {
    deadline: Date.now() + 300,
  });
  assert.equal(r.err?.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(performance.now() - t0 < 2500, 'deadline enforced well before the server answered');
  const until = Date.now() + 3000;
  while (echo.seen.cancelled === cancelledBefore && Date.now() < until)
    await new Promise((x) => setTimeout(x, 20));
  assert.ok(echo.seen.cancelled > cancelledBefore, 'the server call was cancelled through the mesh');
});

test('gRPC to a service with no endpoints: UNAVAILABLE naming the cause, x-hexmesh-error trailer', async (t) => {
  const c = withClient(t, empty.addr.outbound.port, 'nowhere');
  const r = await unary(c, { message: 'x' });
  assert.ok(r.err);
  assert.equal(r.err.code, grpc.status.UNAVAILABLE);
  assert.match(r.err.details, /no endpoints/);
  assert.deepEqual(r.err.metadata.get('x-hexmesh-error'), ['no-healthy-endpoints']);
});

test('gRPC to an unknown authority: UNIMPLEMENTED with unknown-service', async (t) => {
  const c = withClient(t, grpcMesh.client.addr.outbound.port, 'nobody');
  const r = await unary(c, { message: 'x' });
  assert.equal(r.err?.code, grpc.status.UNIMPLEMENTED);
  assert.match(r.err?.details ?? '', /unknown service/);
  assert.deepEqual(r.err?.metadata.get('x-hexmesh-error'), ['unknown-service']);
});
