/**
 * The control plane's HTTP server against a hostile client, over raw sockets: request
 * smuggling (Transfer-Encoding with Content-Length, two Content-Lengths) is refused and the
 * smuggled request never runs; an oversize chunked body (no Content-Length to refuse early)
 * is a 413 and nothing is stored; API answers are never cached and never sniffed; a client
 * dripping its headers or body, or connecting and saying nothing (slowloris), is cut off on
 * time.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { call, startCp, type TestCp } from './helpers.ts';
import { parseResponse, rawExchange } from '../support/raw.ts';

let t: TestCp;
let port: number;
before(async () => {
  t = await startCp({ bodyLimit: 64 * 1024 });
  port = Number(new URL(t.url).port);
});
after(() => t.close());

/** A PUT of KV key `key` as the next request on the connection: it must never run. */
const smuggled = (key: string) =>
  `PUT /v1/kv/${key} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nx`;

test('request smuggling: TE with CL, or two Content-Lengths, is a 400 and the smuggled request never runs', async () => {
  const inner = smuggled('smuggled-te');
  const body = `0\r\n\r\n${inner}`;
  const cases = {
    'te+cl': `POST /v1/apply HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
    'cl+te': `POST /v1/apply HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${body}`,
    'cl+cl': `PUT /v1/kv/first HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: ${1 + smuggled('smuggled-cl').length}\r\n\r\nx${smuggled('smuggled-cl')}`,
  };
  for (const [name, wire] of Object.entries(cases)) {
    const r = await rawExchange(port, wire, { timeoutMs: 5000 });
    assert.ok(r.closed, `${name}: the connection is closed`);
    assert.equal(parseResponse(r.text)?.status, 400, `${name}: ${r.text}`);
    assert.equal(r.text.match(/HTTP\/1\.1 /g)?.length, 1, `${name}: one answer only`);
  }
  for (const key of ['smuggled-te', 'smuggled-cl', 'first'])
    assert.equal((await call(t.url, 'GET', `/v1/kv/${key}`)).status, 404, `${key} not written`);
});

test('an oversize chunked body (no Content-Length) is a 413 and nothing is stored', async () => {
  const chunk = 'a'.repeat(16 * 1024);
  const chunks = [`PUT /v1/kv/big-chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n`];
  for (let i = 0; i < 8; i++) chunks.push(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
  chunks.push('0\r\n\r\n');
  const r = await rawExchange(port, chunks, { timeoutMs: 5000, until: (d) => d.includes('\r\n\r\n{') });
  const res = parseResponse(r.text);
  assert.equal(res?.status, 413, r.text);
  assert.match(r.text, /HEXMESH_ERR_BODY_TOO_LARGE/);
  assert.match(r.text, /connection: close/i);
  assert.equal((await call(t.url, 'GET', '/v1/kv/big-chunked')).status, 404, 'nothing written');
  // The limit is the server's, not the chunk's: a body just under it is taken.
  assert.equal((await call(t.url, 'PUT', '/v1/kv/under', 'b'.repeat(60 * 1024))).status, 200);
});

test('API answers, errors included, are neither cached nor sniffed', async () => {
  assert.equal((await call(t.url, 'PUT', '/v1/kv/app/secret', 'hunter2')).status, 200);
  for (const [method, path] of [
    ['GET', '/v1/kv/app/secret'],
    ['GET', '/v1/resources?kind=Service'],
    ['GET', '/v1/nothing'],
    ['PUT', '/v1/resources/Service/default/x'],
  ]) {
    const r = await call(t.url, method, path, method === 'PUT' ? '{' : undefined, {
      'content-type': 'application/json',
    });
    assert.equal(r.headers.get('cache-control'), 'no-store', `${method} ${path} (${r.status})`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${method} ${path}`);
  }
});

/** Connect, then write `drip` one byte every 100 ms until the server closes (or 8 s pass). */
function dripUntilClosed(port: number, drip: string) {
  return new Promise<{ text: string; elapsed: number; closedByServer: boolean }>((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let i = 0;
    const timer = drip ? setInterval(() => i < drip.length && s.write(drip[i++]), 100) : undefined;
    const giveUp = setTimeout(() => s.destroy(), 8000);
    let closedByServer = false;
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('end', () => (closedByServer = true));
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ text, elapsed: Date.now() - t0, closedByServer });
    });
  });
}

test('slowloris: idle connections and dripped headers get 408 at headersTimeout, a dripped body is cut', async () => {
  const slow = await startCp({ headersTimeoutMs: 500, requestTimeoutMs: 1500 });
  try {
    const slowPort = Number(new URL(slow.url).port);
    const headers = `GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(200)}\r\n\r\n`;
    const body = `PUT /v1/kv/dripped HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200\r\n\r\n`;
    const [idle, dripped, bodyDrip] = await Promise.all([
      dripUntilClosed(slowPort, ''),
      dripUntilClosed(slowPort, headers),
      // The headers at once, then the body byte by byte.
      new Promise<Awaited<ReturnType<typeof dripUntilClosed>>>((resolve) => {
        const t0 = Date.now();
        const s = net.connect(slowPort, '127.0.0.1', () => s.write(body));
        let text = '';
        let closedByServer = false;
        const timer = setInterval(() => s.write('x'), 100);
        const giveUp = setTimeout(() => s.destroy(), 8000);
        s.on('data', (d) => (text += d.toString('latin1')));
        s.on('end', () => (closedByServer = true));
        s.on('error', () => {});
        s.on('close', () => {
          clearInterval(timer);
          clearTimeout(giveUp);
          resolve({ text, elapsed: Date.now() - t0, closedByServer });
        });
      }),
    ]);
    for (const [name, r] of Object.entries({ idle, dripped })) {
      assert.ok(r.closedByServer, `${name}: closed by the server (after ${r.elapsed} ms)`);
      assert.match(r.text, /^HTTP\/1\.1 408 /, name);
      assert.ok(r.elapsed < 2500, `${name}: closed after ${r.elapsed} ms (headersTimeout 500 ms)`);
    }
    assert.ok(bodyDrip.closedByServer, `dripped body: closed by the server (after ${bodyDrip.elapsed} ms)`);
    assert.match(bodyDrip.text, /^HTTP\/1\.1 (408|504) /, bodyDrip.text);
    assert.ok(
      bodyDrip.elapsed < 4000,
      `dripped body: closed after ${bodyDrip.elapsed} ms (requestTimeout 1500 ms)`,
    );
    assert.equal((await call(slow.url, 'GET', '/v1/kv/dripped')).status, 404, 'nothing written');
  } finally {
    await slow.close();
  }
});
