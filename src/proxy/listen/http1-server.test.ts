/**
 * The HTTP/1.1 listener (http1-server.ts on h1-server-connection.ts) against raw sockets:
 * what node:http's server used to do for it, and the framing it now owns. The malformed
 * requests are in test/proxy/bad-input.test.ts (through whole sidecars); these are the
 * well-formed but awkward ones: pipelining, 100-continue, HTTP/1.0, HEAD, a producer whose
 * body disagrees with its Content-Length, request-body backpressure, idle timeout, upgrades.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import { test, type TestContext } from 'node:test';
import type { MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { takeWhole } from '../core/whole-body.ts';
import { wholeBody } from '../retry/test-support.ts';
import { Http1Server, type UpgradeHandler } from './http1-server.ts';

const ID = { direction: 'outbound', service: 'web' } as const;
const OPTS = { maxHeaderSize: 16384, headerTimeout: 5_000, idleTimeout: 5_000 };

async function serve(
  t: TestContext,
  service: Service,
  opts: Partial<typeof OPTS> = {},
  onUpgrade?: UpgradeHandler,
): Promise<{ port: number; h1: Http1Server }> {
  const h1 = new Http1Server(ID, service, { ...OPTS, ...opts }, onUpgrade);
  const srv = net.createServer({ allowHalfOpen: true }, (s) => h1.accept(s, Buffer.alloc(0)));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    h1.close();
    srv.close();
  });
  return { port: (srv.address() as net.AddressInfo).port, h1 };
}

/** Connect, send `data`, collect what comes back until the server closes or `ms` pass. */
function exchange(
  port: number,
  data: string | Buffer,
  ms = 3000,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (text += c));
    s.on('error', () => {});
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, ms);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    s.write(data);
  });
}

const text = (status: number, body: string, headers: Record<string, string> = {}): MeshResponse => ({
  status,
  headers: { 'content-type': 'text/plain', ...headers },
  body: Readable.from([Buffer.from(body)]),
});

/** A body delivered in pieces, never whole at once (so the streaming path is taken). */
function trickle(parts: string[], gapMs = 20): Readable {
  const r = new Readable({ read() {} });
  let i = 0;
  const next = (): void => {
    if (i < parts.length) {
      r.push(Buffer.from(parts[i++]));
      setTimeout(next, gapMs);
    } else r.push(null);
  };
  setTimeout(next, gapMs);
  return r;
}

async function readAll(body: Readable | null): Promise<string> {
  if (body === null) return '';
  let s = '';
  for await (const c of body) s += (c as Buffer).toString();
  return s;
}

test('pipelined requests are answered in order even when the first is the slowest', async (t) => {
  const delays: Record<string, number> = { '/a': 150, '/b': 50, '/c': 0 };
  const { port } = await serve(t, async (req) => {
    await new Promise((r) => setTimeout(r, delays[req.path] ?? 0));
    return text(200, `body${req.path}`);
  });
  const req = (p: string) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`;
  const { text: out } = await exchange(
    port,
    req('/a') + req('/b') + req('/c') + 'GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    3000,
  );
  const bodies = [...out.matchAll(/body\/[a-d]/g)].map((m) => m[0]);
  assert.deepEqual(bodies, ['body/a', 'body/b', 'body/c', 'body/d']);
  assert.equal(out.match(/HTTP\/1\.1 200 OK/g)?.length, 4);
  assert.match(out, /connection: close/);
});

test('Expect: 100-continue gets its interim answer before the body is sent, then the request is served', async (t) => {
  const { port } = await serve(t, async (req) => text(200, `got ${await readAll(req.body)}`));
  const s = net.connect(port, '127.0.0.1');
  t.after(() => s.destroy());
  s.setEncoding('latin1');
  let out = '';
  s.on('data', (c: string) => (out += c));
  s.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  const deadline = Date.now() + 3000;
  while (!out.includes('100 Continue') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.match(out, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
  s.write('hello');
  while (!out.includes('got hello') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.match(out, /HTTP\/1\.1 200 OK[\s\S]*got hello/);
});

test('HTTP/1.0: a body of unknown length ends with the connection; keep-alive is honoured when asked', async (t) => {
  const { port } = await serve(t, async (req) =>
    req.path === '/stream'
      ? { status: 200, headers: {}, body: trickle(['one,', 'two']) }
      : text(200, 'fixed', { 'content-length': '5' }),
  );
  const a = await exchange(port, 'GET /stream HTTP/1.0\r\n\r\n');
  assert.equal(a.closed, true);
  assert.doesNotMatch(a.text, /transfer-encoding/i, 'no chunked framing for an HTTP/1.0 client');
  assert.match(a.text, /connection: close\r\n/);
  assert.ok(a.text.endsWith('\r\n\r\none,two'), a.text);

  const b = await exchange(port, 'GET /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /f HTTP/1.0\r\n\r\n');
  assert.equal(b.text.match(/HTTP\/1\.1 200 OK/g)?.length, 2, b.text);
  assert.match(b.text, /connection: keep-alive\r\n/);
  assert.equal(b.closed, true, 'the second request did not ask to keep the connection');
});

test('HEAD gets the headers only and the connection stays usable; 204 carries no body', async (t) => {
  const { port } = await serve(t, async (req) =>
    req.path === '/none'
      ? { status: 204, headers: {}, body: null }
      : text(200, 'hello', { 'content-length': '5' }),
  );
  const { text: out } = await exchange(
    port,
    'HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /none HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  const responses = out.split(/(?=HTTP\/1\.1 )/);
  assert.equal(responses.length, 3, out);
  assert.match(responses[0], /^HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: 5\r\n[\s\S]*\r\n\r\n$/);
  assert.match(responses[1], /^HTTP\/1\.1 204 No Content\r\n[\s\S]*\r\n\r\n$/);
  assert.doesNotMatch(responses[1], /content-length|transfer-encoding/i);
  assert.ok(responses[2].endsWith('\r\n\r\nhello'));
});

test('a producer body longer or shorter than its Content-Length ends the connection, never a second message', async (t) => {
  const { port } = await serve(t, async (req) =>
    req.path === '/long'
      ? {
          status: 200,
          headers: { 'content-length': '4' },
          body: trickle(['abc', 'HTTP/1.1 200 OK\r\n\r\nforged']),
        }
      : { status: 200, headers: { 'content-length': '10' }, body: trickle(['abc']) },
  );
  const long = await exchange(
    port,
    'GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /long HTTP/1.1\r\nHost: x\r\n\r\n',
  );
  assert.equal(long.closed, true);
  assert.equal(long.text.match(/HTTP\/1\.1 200/g)?.length, 1, long.text);
  assert.doesNotMatch(long.text, /forged/);
  const short = await exchange(port, 'GET /short HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(short.closed, true, 'the client is not left waiting for 7 more bytes');
  assert.ok(short.text.endsWith('\r\n\r\nabc'));
});

test('a response with an invalid header value from upstream drops the connection, not the process', async (t) => {
  const { port } = await serve(t, async () => text(200, 'x', { 'x-bad': 'a\r\nset-cookie: evil=1' }));
  const r = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(r.closed, true);
  assert.doesNotMatch(r.text, /evil/);
});

test('a streamed chunked response carries its trailers', async (t) => {
  const { port } = await serve(t, async () => {
    const m: MeshResponse = {
      status: 200,
      headers: { trailer: 'grpc-status' },
      body: trickle(['part1,', 'part2']),
    };
    m.body!.once('end', () => undefined);
    m.trailers = { 'grpc-status': '0' };
    return m;
  });
  const r = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.match(r.text, /transfer-encoding: chunked\r\n/);
  assert.match(r.text, /6\r\npart1,\r\n5\r\npart2\r\n0\r\ngrpc-status: 0\r\n\r\n$/);
});

test('a request body nobody reads stops the socket being read (backpressure), and flows when read', async (t) => {
  let body: Readable | null = null;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const { port } = await serve(t, async (req) => {
    body = req.body;
    await released;
    let n = 0;
    for await (const c of req.body!) n += (c as Buffer).length;
    return text(200, `read ${n}`);
  });
  const total = 32 * 1024 * 1024;
  const s = net.connect(port, '127.0.0.1');
  t.after(() => s.destroy());
  s.setEncoding('latin1');
  let out = '';
  s.on('data', (c: string) => (out += c));
  s.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\n\r\n`);
  const chunk = Buffer.alloc(1024 * 1024, 97);
  let sent = 0;
  const pump = (): void => {
    while (sent < total) {
      sent += chunk.length;
      if (!s.write(chunk)) return void s.once('drain', pump);
    }
  };
  pump();
  await new Promise((r) => setTimeout(r, 800));
  assert.ok(body !== null);
  const buffered = (body as Readable).readableLength;
  assert.ok(buffered <= 1024 * 1024, `the listener buffered ${buffered} bytes for a reader that never read`);
  assert.ok(sent < total, 'the client could send everything: nothing pushed back');
  release();
  const deadline = Date.now() + 20_000;
  while (!out.includes(`read ${total}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(out, new RegExp(`read ${total}`));
});

test('an idle keep-alive connection is closed after idleTimeout; a busy one is not', async (t) => {
  const { port } = await serve(
    t,
    async (req) => {
      if (req.path === '/slow') await new Promise((r) => setTimeout(r, 1500));
      return text(200, 'ok');
    },
    { idleTimeout: 300 },
  );
  const started = Date.now();
  const idle = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 5000);
  assert.equal(idle.closed, true);
  assert.ok(Date.now() - started < 2500, `closed after ${Date.now() - started} ms`);
  const slow = await exchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n', 5000);
  assert.match(
    slow.text,
    /200 OK[\s\S]*\r\n2\r\nok\r\n0\r\n\r\n$/,
    'a request longer than idleTimeout is answered',
  );
});

test('Upgrade hands the socket over with the bytes that followed the head; the request carries its headers', async (t) => {
  let seen: MeshRequest | undefined;
  const onUpgrade: UpgradeHandler = (req: MeshRequest, socket: Duplex, head: Buffer) => {
    seen = req;
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n');
    socket.write(`head=${head.toString()};`);
    socket.on('data', (c: Buffer) => socket.write(`echo=${c.toString()};`));
    socket.on('end', () => socket.end());
  };
  const { port } = await serve(t, async () => text(200, 'no'), {}, onUpgrade);
  const s = net.connect(port, '127.0.0.1');
  t.after(() => s.destroy());
  s.setEncoding('latin1');
  let out = '';
  s.on('data', (c: string) => (out += c));
  s.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Trace: 1\r\n\r\nEARLY');
  const deadline = Date.now() + 3000;
  while (!out.includes('head=EARLY;') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  s.write('later');
  while (!out.includes('echo=later;') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.match(out, /101 Switching Protocols[\s\S]*head=EARLY;echo=later;/);
  assert.equal(seen?.path, '/ws');
  assert.equal(seen?.headers.upgrade, 'echo');
  assert.equal(seen?.headers['x-trace'], '1');
});

test('repeated header lines reach the service as a list; cookies joined; single-valued ones keep the first', async (t) => {
  let seen: MeshRequest | undefined;
  const { port } = await serve(t, async (req) => {
    seen = req;
    return text(200, 'ok');
  });
  await exchange(
    port,
    'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nCookie: a=1\r\nCookie: b=2\r\nUser-Agent: one\r\nUser-Agent: two\r\nConnection: close\r\n\r\n',
  );
  assert.deepEqual(seen?.headers['x-a'], ['1', '2']);
  assert.equal(seen?.headers.cookie, 'a=1; b=2');
  assert.equal(seen?.headers['user-agent'], 'one');
  assert.equal(seen?.ctx.requestNames?.get('x-a'), 'X-A');
});

test('an answer sent before the request body ended closes the connection instead of reading the rest', async (t) => {
  const { port } = await serve(t, async () => text(403, 'denied', { 'content-length': '6' }));
  const r = await exchange(
    port,
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n${'a'.repeat(1000)}`,
    5000,
  );
  assert.match(r.text, /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*denied$/);
  assert.equal(r.closed, true, 'the connection is not kept waiting for 999,000 more bytes');
});

test('a service that throws synchronously, and header or trailer values that are not strings, fail no process', async (t) => {
  const { port, h1 } = await serve(t, (req) => {
    if (req.path === '/throw') throw new Error('a layer bug');
    const m: MeshResponse = {
      status: 200,
      headers: { 'x-n': 5 as unknown as string },
      body: trickle(['ok']),
      trailers: { 'x-t': 7 as unknown as string },
    };
    return Promise.resolve(m);
  });
  const thrown = await exchange(port, 'GET /throw HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(thrown.closed, true);
  const odd = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.match(odd.text, /x-n: 5\r\n/);
  assert.match(odd.text, /0\r\nx-t: 7\r\n\r\n$/);
  const deadline = Date.now() + 3000;
  while (h1.inflight !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(h1.inflight, 0);
});

test('a client that pipelines without reading its answers gets no more served than its socket holds', async (t) => {
  let served = 0;
  const big = Buffer.alloc(64 * 1024, 98);
  const { port } = await serve(t, async () => {
    served++;
    const body = Object.assign(new Readable({ read() {} }), { complete: true });
    body.push(big);
    body.push(null);
    return { status: 200, headers: { 'content-length': String(big.length) }, body };
  });
  const s = net.connect(port, '127.0.0.1');
  t.after(() => s.destroy());
  s.on('error', () => {});
  s.pause(); // never reads
  const one = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
  for (let i = 0; i < 2000; i++) s.write(one);
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(
    served < 600,
    `${served} of 2000 answered into a socket nobody reads (${(served * 64) >> 10} MiB)`,
  );
  assert.ok(served > 0);
});

test('whole bodies, small (one buffer with the head) and large (corked), framed by length or chunked with trailers', async (t) => {
  const small = Buffer.alloc(1000, 'a');
  const large = Buffer.alloc(40_000, 'b');
  const { port } = await serve(t, async (req) => {
    const body = req.path.includes('large') ? large : small;
    if (req.path.startsWith('/len'))
      return { status: 200, headers: { 'content-length': String(body.length) }, body: wholeBody(body) };
    return { status: 200, headers: { trailer: 'x-sum' }, body: wholeBody(body), trailers: { 'x-sum': 'ok' } };
  });
  for (const [path, body] of [
    ['/len-small', small],
    ['/len-large', large],
  ] as const) {
    const { text: got } = await exchange(
      port,
      `GET ${path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n`,
    );
    const [head, rest] = [got.slice(0, got.indexOf('\r\n\r\n')), got.slice(got.indexOf('\r\n\r\n') + 4)];
    assert.match(head, new RegExp(`^HTTP/1.1 200 OK\r\n[^]*content-length: ${body.length}\r\n`), path);
    assert.equal(rest, body.toString('latin1'), `${path}: the body follows its head exactly`);
  }
  for (const [path, body] of [
    ['/chunked-small', small],
    ['/chunked-large', large],
  ] as const) {
    const { text: got } = await exchange(
      port,
      `GET ${path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n`,
    );
    const rest = got.slice(got.indexOf('\r\n\r\n') + 4);
    assert.match(got, /transfer-encoding: chunked\r\n/, path);
    assert.equal(
      rest,
      `${body.length.toString(16)}\r\n${body.toString('latin1')}\r\n0\r\nx-sum: ok\r\n\r\n`,
      `${path}: one chunk, then the last chunk with the trailers`,
    );
  }
});

test('a request whose body came in the same read as its head reaches the service whole', async (t) => {
  const seen: (string | null | undefined)[] = [];
  const { port } = await serve(t, async (req) => {
    // Taken at once, before any await: the body is complete when the request is dispatched.
    const whole = req.body === null ? null : takeWhole(req.body);
    seen.push(whole === undefined ? undefined : (whole?.toString() ?? null));
    if (whole === undefined) await readAll(req.body);
    return text(200, 'ok');
  });
  const { text: got } = await exchange(
    port,
    'POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello' +
      'POST /b HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  );
  assert.equal(got.match(/HTTP\/1.1 200 OK/g)?.length, 2, got);
  assert.deepEqual(seen, ['hello', 'abc']);
});

test('a request body whose reader fell behind to its last byte leaves the connection reading the next request', async (t) => {
  // The reader takes one chunk at a time with a pause, so the parser's pushes fill the body's
  // buffer and reading stops; when the last push also filled it, the body had ended and never
  // asked for more: the connection stayed paused and the keep-alive request after it hung
  // (seen as a flaky CI test: a pooled hop connection reused after a 20 MiB upload).
  const service: Service = async (req) => {
    let n = 0;
    if (req.body)
      for await (const c of req.body as AsyncIterable<Buffer>) {
        n += c.length;
        await new Promise((r) => setTimeout(r, 2));
      }
    return text(200, `got ${n}`);
  };
  const { port } = await serve(t, service);
  const s = net.connect(port, '127.0.0.1');
  t.after(() => s.destroy());
  let got = '';
  s.setEncoding('latin1');
  s.on('data', (c: string) => (got += c));
  const until = async (what: string, ok: () => boolean): Promise<void> => {
    const end = Date.now() + 5000;
    while (!ok()) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}; received: ${got.slice(0, 300)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const head = (n: number): string => `POST /up HTTP/1.1\r\nHost: web\r\nContent-Length: ${n}\r\n\r\n`;
  for (let round = 1; round <= 3; round++) {
    // Head and body end on a 64 KiB boundary: the last socket read is a full one, whose push
    // fills the body's buffer again (the case that stuck).
    const total = (16 + round) * 64 * 1024;
    let size = total - head(total).length;
    size = total - head(size).length;
    s.write(head(size));
    s.write(Buffer.alloc(size, 97));
    await until(`the upload's answer (${round})`, () => got.includes(`got ${size}`));
  }
  s.write('GET /next HTTP/1.1\r\nHost: web\r\n\r\n');
  await until('the answer to the request after the uploads', () => got.includes('got 0'));
});
