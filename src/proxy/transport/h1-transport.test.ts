/**
 * The HTTP/1.1 hop against real origins on 127.0.0.1:0, well-behaved (node:http) and hostile
 * (raw TCP servers writing exactly the bytes under test): framing, pooling, smuggling,
 * injection, timeouts, cancellation.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { after, test } from 'node:test';
import { Cancel } from '../core/cancel.ts';
import { takeWhole } from '../core/whole-body.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { fakeRequest, readAll, wholeBody } from '../retry/test-support.ts';
import { H1Transport, type H1TransportOptions } from './h1-transport.ts';
import { PLAINTEXT } from './hop-security.ts';

const T = { timeout: 20_000 };
const cleanups: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function transport(port: number, opts: Partial<H1TransportOptions> = {}): H1Transport {
  const t = new H1Transport('127.0.0.1', port, {
    connectTimeout: 2000,
    maxConnections: 4,
    idleTimeout: 30_000,
    bodyTimeout: 5000,
    security: PLAINTEXT,
    ...opts,
  });
  cleanups.push(() => t.destroy());
  return t;
}

interface RawOrigin {
  port: number;
  /** Request heads (and whatever else) each connection sent, per connection. */
  received: string[];
  connections: net.Socket[];
  closed: number;
  /** 'data' events over all connections. */
  reads: number;
}

/** A raw TCP origin: `onRequest(socket, text)` sees the bytes of each read. */
async function rawOrigin(
  onData: (socket: net.Socket, text: string, origin: RawOrigin) => void,
): Promise<RawOrigin> {
  const origin: RawOrigin = { port: 0, received: [], connections: [], closed: 0, reads: 0 };
  const server = net.createServer((socket) => {
    const index = origin.connections.push(socket) - 1;
    origin.received[index] = '';
    socket.on('data', (d) => {
      origin.reads++;
      origin.received[index] += d.toString('latin1');
      onData(socket, d.toString('latin1'), origin);
    });
    socket.on('error', () => {});
    socket.on('close', () => origin.closed++);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin.port = (server.address() as AddressInfo).port;
  cleanups.push(() => {
    for (const s of origin.connections) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return origin;
}

async function httpOrigin(
  handler: Parameters<typeof createHttpServer>[1],
): Promise<{ port: number; server: HttpServer }> {
  const server = createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return { port: (server.address() as AddressInfo).port, server };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

test(
  'keep-alive: sequential requests share one connection; the head is one well-formed message',
  T,
  async () => {
    const origin = await rawOrigin((s) => s.write(OK));
    const t = transport(origin.port);
    for (let i = 0; i < 3; i++) {
      const res = await t.request(fakeRequest(), undefined);
      assert.equal(res.status, 200);
      assert.equal((await readAll(res.body)).toString(), 'ok');
    }
    assert.equal(origin.connections.length, 1);
    const first = origin.received[0].split('\r\n\r\n')[0];
    assert.match(first, /^GET \/reviews\/1 HTTP\/1\.1\r\nhost: reviews:9080\r\nconnection: keep-alive$/);
  },
);

test(
  'a response with both Content-Length and Transfer-Encoding is refused (no smuggling), the connection dropped',
  T,
  async () => {
    let n = 0;
    const origin = await rawOrigin((s) => {
      n++;
      if (n === 1)
        s.write(
          'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled',
        );
      else s.write(OK);
    });
    const t = transport(origin.port);
    await assert.rejects(t.request(fakeRequest(), undefined), (err: unknown) => {
      assert.ok(err instanceof HexmeshError);
      assert.equal(err.code, 'HEXMESH_ERR_UPSTREAM_RESET');
      return true;
    });
    const res = await t.request(fakeRequest(), undefined);
    assert.equal((await readAll(res.body)).toString(), 'ok', 'the next request gets its own response');
    assert.equal(origin.connections.length, 2, 'the poisoned connection was not reused');
  },
);

test(
  'a response that arrives in one read is delivered with its body complete (the listener writes it whole)',
  T,
  async () => {
    const body = 'x'.repeat(1024);
    const origin = await rawOrigin((s) =>
      s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`),
    );
    const t = transport(origin.port);
    for (let i = 0; i < 3; i++) {
      const res = await t.request(fakeRequest(), undefined);
      // Settled from inside the parser's callback, the promise ran before the body was parsed
      // (Node drains microtasks between the callbacks of a parser on the socket's handle).
      assert.equal((res.body as { complete?: boolean }).complete, true, `response ${i}: body not complete`);
      if (i < 2) {
        // Taken whole: the bytes at once, and the stream ended as if read (its 'end' listeners ran).
        let ended = false;
        res.body!.once('end', () => (ended = true));
        assert.equal(takeWhole(res.body!)?.toString(), body);
        assert.equal(ended, true);
        assert.equal(res.body!.readableEnded, true);
        // Taking it again gives nothing more.
        assert.equal(takeWhole(res.body!), undefined);
      } else assert.equal((await readAll(res.body)).toString(), body, 'read as a stream instead');
    }
  },
);

test('a complete response followed by garbage stands; the connection is not reused', T, async () => {
  let n = 0;
  const origin = await rawOrigin((s) => {
    n++;
    s.write(n === 1 ? `${OK}HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbad` : OK);
  });
  const t = transport(origin.port);
  const res = await t.request(fakeRequest(), undefined);
  assert.equal(res.status, 200);
  assert.equal((await readAll(res.body)).toString(), 'ok');
  await until(() => origin.closed === 1, 'the connection with the unsolicited response to close');
  const again = await t.request(fakeRequest(), undefined);
  assert.equal((await readAll(again.body)).toString(), 'ok');
  assert.equal(origin.connections.length, 2);
});

test(
  'an unsolicited response on an idle connection closes it; the next request opens another',
  T,
  async () => {
    const origin = await rawOrigin((s) => s.write(OK));
    const t = transport(origin.port);
    await readAll((await t.request(fakeRequest(), undefined)).body);
    origin.connections[0].write('HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n');
    await until(() => origin.closed === 1, 'the idle connection to close');
    const res = await t.request(fakeRequest(), undefined);
    assert.equal(res.status, 200);
    assert.equal(origin.connections.length, 2);
  },
);

test('a header value with CR/LF added by a layer is refused before a byte is sent', T, async () => {
  const origin = await rawOrigin((s) => s.write(OK));
  const t = transport(origin.port);
  for (const headers of [
    { 'x-injected': 'a\r\nx-evil: 1' },
    { 'x-nul': 'a\u0000b' },
    { 'bad name': 'v' },
    { 'x-list': ['fine', 'not\nfine'] },
  ]) {
    const req = fakeRequest();
    req.headers = headers;
    await assert.rejects(t.request(req, undefined), HexmeshError);
  }
  const req = fakeRequest();
  req.path = '/a b';
  await assert.rejects(t.request(req, undefined), HexmeshError, 'a space in the target is refused');
  assert.equal(origin.connections.length, 0, 'nothing reached the origin');
  const res = await t.request(fakeRequest(), undefined);
  assert.equal(res.status, 200, 'the transport still serves');
});

test('the pool holds at most maxConnections; the rest wait their turn and all complete', T, async () => {
  let inFlight = 0;
  let peak = 0;
  const { port } = await httpOrigin((_req, res) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    setTimeout(() => {
      inFlight--;
      res.end('done');
    }, 30);
  });
  const t = transport(port, { maxConnections: 2 });
  const results = await Promise.all(
    Array.from({ length: 8 }, async () =>
      (await readAll((await t.request(fakeRequest(), undefined)).body)).toString(),
    ),
  );
  assert.deepEqual(results, Array(8).fill('done'));
  assert.equal(peak, 2);
});

test(
  "the origin's keep-alive timeout is honoured: an idle connection is closed before the origin would",
  T,
  async () => {
    const origin = await rawOrigin((s) =>
      s.write('HTTP/1.1 200 OK\r\nkeep-alive: timeout=2\r\ncontent-length: 2\r\n\r\nok'),
    );
    const t = transport(origin.port);
    await readAll((await t.request(fakeRequest(), undefined)).body);
    const started = Date.now();
    await until(() => origin.closed === 1, 'the hop to close the idle connection', 4000);
    assert.ok(Date.now() - started < 2000, 'closed within the announced 2 s (1 s margin)');
  },
);

test(
  'request bodies: a declared length is kept, a stream without one is chunked, trailers of the response relayed',
  T,
  async () => {
    const seen: { te?: string; cl?: string; body: string }[] = [];
    const { port } = await httpOrigin((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({
          te: req.headers['transfer-encoding'],
          cl: req.headers['content-length'],
          body: Buffer.concat(chunks).toString(),
        });
        res.writeHead(200, { trailer: 'x-sum' });
        res.write('a');
        res.addTrailers({ 'x-sum': '42' });
        res.end('b');
      });
    });
    const t = transport(port);
    const sized = fakeRequest({ method: 'PUT', body: Readable.from([Buffer.from('hello')]) });
    sized.headers = { 'content-length': '5' };
    const r1 = await t.request(sized, undefined);
    assert.equal((await readAll(r1.body)).toString(), 'ab');
    assert.deepEqual(r1.trailers, { 'x-sum': '42' });
    const streamed = fakeRequest({
      method: 'POST',
      body: Readable.from([Buffer.from('one'), Buffer.from('two')]),
    });
    await readAll((await t.request(streamed, undefined)).body);
    const empty = fakeRequest({ method: 'POST' });
    await readAll((await t.request(empty, undefined)).body);
    assert.deepEqual(seen, [
      { te: undefined, cl: '5', body: 'hello' },
      { te: 'chunked', cl: undefined, body: 'onetwo' },
      { te: undefined, cl: '0', body: '' },
    ]);
  },
);

test('a body shorter or longer than its content-length fails the request and the connection', T, async () => {
  const origin = await rawOrigin(() => {});
  const t = transport(origin.port);
  for (const body of ['abc', 'abcdefghijk']) {
    const req = fakeRequest({ method: 'PUT', body: Readable.from([Buffer.from(body)]) });
    req.headers = { 'content-length': '10' };
    await assert.rejects(t.request(req, undefined), HexmeshError);
  }
  await until(() => origin.closed === 2, 'both connections to close');
});

test(
  'a whole request body goes out with its head in one write, framed by length or chunked; a wrong length writes nothing',
  T,
  async () => {
    const origin = await rawOrigin((s, text) => {
      if (text.includes('\r\n\r\n')) s.write(OK);
    });
    const t = transport(origin.port);
    const sized = fakeRequest({ method: 'PUT', body: wholeBody('hello') });
    sized.headers = { 'content-length': '5' };
    assert.equal((await t.request(sized, undefined)).status, 200);
    await until(() => origin.received[0]?.endsWith('hello') === true, 'the sized body');
    const chunked = fakeRequest({ method: 'POST', body: wholeBody('hello') });
    const res = await t.request(chunked, undefined);
    await readAll(res.body);
    await until(() => origin.received[0]?.endsWith('0\r\n\r\n') === true, 'the chunked body');
    const [, second] = origin.received[0].split(/(?=POST )/);
    assert.match(second, /transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n$/);
    // One read per message at the origin: head and body came in one write.
    assert.equal(origin.reads, 2, `reads: ${origin.reads}`);
    const before = origin.received[0].length;
    const wrong = fakeRequest({ method: 'PUT', body: wholeBody('hello') });
    wrong.headers = { 'content-length': '9' };
    await assert.rejects(t.request(wrong, undefined), HexmeshError);
    const after = fakeRequest({ method: 'PUT', body: wholeBody('') });
    after.headers = { 'content-length': '0' };
    assert.equal((await t.request(after, undefined)).status, 200);
    await until(() => origin.received[0].length > before, 'the next request');
    assert.doesNotMatch(
      origin.received[0].slice(before),
      /content-length: 9/,
      'the mismatched one was not sent',
    );
    assert.equal(origin.connections.length, 1, 'the connection stayed clean and was reused');
  },
);

test('a request body that fails before its first byte never reaches the origin', T, async () => {
  const origin = await rawOrigin(() => {});
  const t = transport(origin.port);
  const body = new PassThrough();
  const pending = t.request(fakeRequest({ method: 'POST', body }), undefined);
  await until(() => origin.connections.length === 1, 'the connection');
  body.destroy(new Error('client sent a bad chunk'));
  await assert.rejects(pending, HexmeshError);
  await until(() => origin.closed === 1, 'the connection to close');
  assert.equal(origin.received[0], '', 'not one byte of the request was written');
});

test('HEAD and informational responses: the body-less HEAD answer and a 103 before the 200', T, async () => {
  const origin = await rawOrigin((s, text) => {
    if (text.startsWith('HEAD')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n');
    else
      s.write(
        'HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
      );
  });
  const t = transport(origin.port);
  const head = await t.request(fakeRequest({ method: 'HEAD' }), undefined);
  assert.equal(head.headers['content-length'], '1000');
  assert.equal((await readAll(head.body)).length, 0);
  const res = await t.request(fakeRequest(), undefined);
  assert.equal(res.status, 200);
  assert.equal((await readAll(res.body)).toString(), 'ok');
  assert.equal(origin.connections.length, 1, 'both on one kept-alive connection');
});

test('a 101 on a plain request is refused', T, async () => {
  const origin = await rawOrigin((s) =>
    s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: evil\r\nconnection: upgrade\r\n\r\n'),
  );
  const t = transport(origin.port);
  await assert.rejects(t.request(fakeRequest(), undefined), HexmeshError);
  await until(() => origin.closed === 1, 'the connection to close');
});

test(
  'a response body that stalls past the stream idle timeout fails; a paused reader is not a stall',
  T,
  async () => {
    const big = Buffer.alloc(32 * 1024 * 1024, 'x');
    const origin = await rawOrigin((s, text) => {
      if (text.includes('/stall')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
      else {
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${big.length}\r\n\r\n`);
        s.write(big);
      }
    });
    const t = transport(origin.port, { bodyTimeout: 300 });
    const stalled = fakeRequest();
    stalled.path = '/stall';
    const res = await t.request(stalled, undefined);
    await assert.rejects(readAll(res.body), /stream idle timeout/);
    const slow = await t.request(fakeRequest(), undefined);
    // Not read for longer than the idle timeout: backpressure holds the origin, nothing fails.
    await new Promise((r) => setTimeout(r, 800));
    assert.ok(
      origin.connections[1].writableLength > 0,
      'backpressure reached the origin (the hop stopped reading instead of buffering the body)',
    );
    assert.equal((await readAll(slow.body)).length, big.length);
  },
);

test('an abort before the response rejects with its reason and closes the connection', T, async () => {
  const origin = await rawOrigin(() => {});
  const t = transport(origin.port);
  const cancel = new Cancel();
  const pending = t.request(fakeRequest(), cancel);
  await until(() => origin.received[0]?.includes('\r\n\r\n') ?? false, 'the request to arrive');
  const reason = new HexmeshError('HEXMESH_ERR_TIMEOUT', 'request timeout');
  cancel.abort(reason);
  await assert.rejects(pending, (err) => err === reason);
  await until(() => origin.closed === 1, 'the connection to close');
});

test('a stale keep-alive connection closed under a GET is retried on a new one', T, async () => {
  let n = 0;
  const origin = await rawOrigin((s) => {
    n++;
    if (n === 2)
      s.destroy(); // the origin closes the kept-alive connection as the request lands
    else s.write(OK);
  });
  const t = transport(origin.port);
  await readAll((await t.request(fakeRequest(), undefined)).body);
  const res = await t.request(fakeRequest(), undefined);
  assert.equal((await readAll(res.body)).toString(), 'ok');
  assert.equal(origin.connections.length, 2);
});

test('a request with a body is not sent again after a stale connection', T, async () => {
  let n = 0;
  const origin = await rawOrigin((s) => {
    n++;
    if (n === 2) s.destroy();
    else s.write(OK);
  });
  const t = transport(origin.port);
  await readAll((await t.request(fakeRequest(), undefined)).body);
  const post = fakeRequest({ method: 'POST', body: Readable.from([Buffer.from('x')]) });
  await assert.rejects(t.request(post, undefined), HexmeshError);
  assert.equal(origin.connections.length, 1);
});

test('a refused connect is typed HEXMESH_ERR_CONNECT_FAILED', T, async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  await assert.rejects(transport(port).request(fakeRequest(), undefined), (err: unknown) => {
    assert.equal((err as HexmeshError).code, 'HEXMESH_ERR_CONNECT_FAILED');
    return true;
  });
});

test(
  'an origin that dies mid-body fails the body (never a short body passed as whole); the connection is not reused',
  T,
  async () => {
    let n = 0;
    const origin = await rawOrigin((s) => {
      n++;
      if (n === 1) {
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
        setTimeout(() => s.destroy(), 20);
      } else s.write(OK);
    });
    const t = transport(origin.port);
    const res = await t.request(fakeRequest(), undefined);
    assert.equal(res.status, 200);
    await assert.rejects(readAll(res.body));
    const again = await t.request(fakeRequest(), undefined);
    assert.equal((await readAll(again.body)).toString(), 'ok');
    assert.equal(origin.connections.length, 2);
  },
);
