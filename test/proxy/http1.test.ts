/**
 * HTTP/1.1 end to end through two sidecars (client outbound → server inbound → app), driven
 * by curl, undici and a raw socket that shows exactly what went on the wire.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { buildConnector, Client, request } from 'undici';
import { curl, deferred, RawHttp, within } from '../support/clients.ts';
import { startHttpServer, startPair, type Pair } from '../support/mesh.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let mesh: Pair;
let app: Awaited<ReturnType<typeof startHttpServer>>;
let appConnections = 0;
let outPort = 0;
let dir = '';
/** Hooks the streaming tests use to see inside the app. */
let sawFirstChunk = deferred<string>();
let clientGotFirst = deferred();

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? '/';
  const path = url.split('?')[0];
  switch (path) {
    case '/echo':
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
      return;
    case '/hash': {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.on('end', () => res.end(`${n} ${h.digest('hex')}`));
      return;
    }
    case '/stream-in': {
      const parts: string[] = [];
      req.on('data', (d: Buffer) => {
        if (parts.length === 0) sawFirstChunk.resolve(d.toString());
        parts.push(d.toString());
      });
      req.on('end', () => res.end(`got ${parts.join('')} te=${req.headers['transfer-encoding']}`));
      return;
    }
    case '/stream-out':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      void within(clientGotFirst.promise, 5000, 'client got first chunk').then(
        () => res.end('second'),
        () => res.end('never-streamed'),
      );
      return;
    case '/trailers':
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, x-count' });
      res.write('part one,');
      res.write('part two');
      res.addTrailers({ 'x-checksum': sha('part one,part two'), 'x-count': '2' });
      res.end();
      return;
    case '/head':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1234' });
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
      return;
    case '/204':
      res.writeHead(204, { 'x-kind': 'no-content' });
      res.end();
      return;
    case '/304':
      res.writeHead(304, { etag: '"v1"', 'x-kind': 'not-modified' });
      res.end();
      return;
    case '/headers':
      res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; HttpOnly', 'c=3, with comma']);
      res.setHeader('x-weird', 'v1, "quoted, comma"  two  spaces');
      res.setHeader('x-list', ['one', 'two']);
      res.setHeader('connection', 'x-resp-drop');
      res.setHeader('x-resp-drop', 'must not arrive');
      res.setHeader('keep-alive', 'timeout=99');
      res.setHeader('proxy-authenticate', 'Basic realm="app"');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url, headers: req.headers, raw: req.rawHeaders }));
      return;
    default:
      res.end(`${req.method} ${url} host=${req.headers.host}`);
  }
}

before(async () => {
  app = await startHttpServer(handler);
  app.server.on('connection', () => appConnections++);
  mesh = await startPair({ service: 'svc', appPort: app.port });
  outPort = mesh.client.addr.outbound.port;
  dir = mkdtempSync(join(tmpdir(), 'hexmesh-http1-'));
});

after(async () => {
  await mesh.close();
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

const url = (p: string) => `http://127.0.0.1:${outPort}${p}`;
const curl11 = (...args: string[]) => curl(['--http1.1', '-H', 'Host: svc', ...args]);

test('curl: a plain GET crosses both sidecars', async () => {
  const r = await curl11(url('/plain?q=1'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'GET /plain?q=1 host=svc');
});

test('keep-alive: curl reuses its connection, and the app sees one upstream connection', async () => {
  const before = appConnections;
  const r = await curl11('-w', ' %{num_connects}\n', url('/a'), url('/b'), url('/c'), url('/d'));
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trim().split('\n');
  assert.deepEqual(
    lines.map((l) => l.split(' ').pop()),
    ['1', '0', '0', '0'],
    `curl connects per request: ${lines.join(' | ')}`,
  );
  assert.ok(appConnections - before <= 1, `app saw ${appConnections - before} new connections`);
});

test('keep-alive: undici sends many requests over one socket', async (t) => {
  let connects = 0;
  const connector = buildConnector({});
  const client = new Client(url(''), {
    connect: (opts, cb) => {
      connects++;
      connector(opts, cb);
    },
  });
  t.after(() => client.close());
  for (let i = 0; i < 5; i++) {
    const r = await client.request({ method: 'GET', path: `/k${i}`, headers: { host: 'svc' } });
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), `GET /k${i} host=svc`);
  }
  assert.equal(connects, 1);
});

test('a chunked request body streams to the app before the client finished sending', async () => {
  sawFirstChunk = deferred<string>();
  const raw = await RawHttp.connect(outPort);
  try {
    raw.write('POST /stream-in HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst;\r\n');
    // If any hop buffered the body, the app would see nothing until the terminating chunk.
    assert.equal(await within(sawFirstChunk.promise, 5000, 'app saw the first chunk'), 'first;');
    raw.write('6\r\nsecond\r\n0\r\n\r\n');
    const res = await within(raw.response(), 5000, 'response');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'got first;second te=chunked');
  } finally {
    raw.close();
  }
});

test('undici: a generator body streams to the app chunk by chunk', async () => {
  sawFirstChunk = deferred<string>();
  async function* body() {
    yield Buffer.from('alpha;');
    await within(sawFirstChunk.promise, 5000, 'app saw the first chunk');
    yield Buffer.from('beta');
  }
  const r = await request(url('/stream-in'), {
    method: 'POST',
    headers: { host: 'svc' },
    body: Readable.from(body()),
  });
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), 'got alpha;beta te=chunked');
});

test('a streamed response reaches the client chunk by chunk', async () => {
  clientGotFirst = deferred();
  const r = await request(url('/stream-out'), { headers: { host: 'svc' } });
  assert.equal(r.statusCode, 200);
  let text = '';
  for await (const chunk of r.body) {
    text += chunk.toString();
    if (text.includes('first;')) clientGotFirst.resolve();
  }
  assert.equal(text, 'first;second');
});

test('a 20 MiB body is intact both ways (undici echo)', async () => {
  const big = randomBytes(20 << 20);
  const r = await request(url('/echo'), { method: 'POST', headers: { host: 'svc' }, body: big });
  assert.equal(r.statusCode, 200);
  const h = createHash('sha256');
  let n = 0;
  for await (const c of r.body) {
    h.update(c);
    n += c.length;
  }
  assert.equal(n, big.length);
  assert.equal(h.digest('hex'), sha(big));
});

test('curl: a 20 MiB upload with Expect: 100-continue gets 100 Continue and arrives intact', async () => {
  const big = randomBytes(20 << 20);
  const file = join(dir, 'big.bin');
  writeFileSync(file, big);
  const r = await curl11(
    '-v',
    '--expect100-timeout',
    '60',
    '--data-binary',
    `@${file}`,
    '-H',
    'Expect: 100-continue',
    '-H',
    'Content-Type: application/octet-stream',
    url('/hash'),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /> Expect: 100-continue/);
  assert.match(r.stderr, /< HTTP\/1.1 100 Continue/);
  assert.equal(r.stdout.toString(), `${big.length} ${sha(big)}`);
});

test('curl: a 20 MiB download is intact', async () => {
  const big = randomBytes(20 << 20);
  const file = join(dir, 'down.bin');
  writeFileSync(file, big);
  const r = await curl11('--data-binary', `@${file}`, url('/echo'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.length, big.length);
  assert.equal(sha(r.stdout), sha(big));
});

test('trailers from the app reach the client, announced by Trailer, over chunked encoding', async () => {
  const raw = await RawHttp.connect(outPort);
  try {
    raw.write('GET /trailers HTTP/1.1\r\nHost: svc\r\nTE: trailers\r\n\r\n');
    const res = await within(raw.response(), 5000, 'response');
    assert.equal(res.status, 200);
    assert.ok(res.chunked, 'response is chunked');
    assert.equal(res.body.toString(), 'part one,part two');
    const trailer = res.headers.find(([k]) => k === 'trailer')?.[1];
    assert.ok(trailer, 'Trailer header announces the trailers');
    assert.deepEqual(
      trailer
        .toLowerCase()
        .split(',')
        .map((s) => s.trim())
        .sort(),
      ['x-checksum', 'x-count'],
    );
    assert.deepEqual(Object.fromEntries(res.trailers), {
      'x-checksum': sha('part one,part two'),
      'x-count': '2',
    });
  } finally {
    raw.close();
  }
});

test('curl sees the trailers too', async () => {
  const r = await curl11('-D', '-', '-o', '/dev/null', url('/trailers'));
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.toString().toLowerCase();
  assert.match(out, /\r\ntrailer: x-checksum, x-count\r\n/);
  assert.match(out, new RegExp(`x-checksum: ${sha('part one,part two')}`));
  assert.match(out, /x-count: 2/);
});

test('HEAD, 204 and 304 carry no body (a pipelined keep-alive connection stays in sync)', async () => {
  const raw = await RawHttp.connect(outPort);
  try {
    raw.write('HEAD /head HTTP/1.1\r\nHost: svc\r\n\r\n');
    const head = await within(raw.response(true), 5000, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers.find(([k]) => k === 'content-length')?.[1], '1234');
    raw.write('GET /204 HTTP/1.1\r\nHost: svc\r\n\r\n');
    const r204 = await within(raw.response(), 5000, '204');
    assert.equal(r204.status, 204);
    assert.equal(r204.headers.find(([k]) => k === 'x-kind')?.[1], 'no-content');
    raw.write('GET /304 HTTP/1.1\r\nHost: svc\r\nIf-None-Match: "v1"\r\n\r\n');
    const r304 = await within(raw.response(), 5000, '304');
    assert.equal(r304.status, 304);
    assert.equal(r304.headers.find(([k]) => k === 'etag')?.[1], '"v1"');
    // Any body bytes sent after those responses would show up here.
    assert.equal((await raw.idle(200)).length, 0, 'no stray body bytes');
    raw.write('GET /after HTTP/1.1\r\nHost: svc\r\n\r\n');
    const last = await within(raw.response(), 5000, 'after');
    assert.equal(last.body.toString(), 'GET /after host=svc');
  } finally {
    raw.close();
  }
  const r = await curl11('-I', url('/head'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), /^HTTP\/1.1 200/);
  assert.match(r.stdout.toString().toLowerCase(), /content-length: 1234/);
});

test('absolute-form target: the app uses the sidecar as its HTTP proxy (curl -x)', async () => {
  const r = await curl(['--http1.1', '-x', `http://127.0.0.1:${outPort}`, 'http://svc/some/path?x=1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'GET /some/path?x=1 host=svc');
  // RFC 9112 §3.2.2: with an absolute-form target the proxy ignores Host.
  const raw = await RawHttp.connect(outPort);
  try {
    raw.write('GET http://svc/p?y=2 HTTP/1.1\r\nHost: someone-else\r\n\r\n');
    const res = await within(raw.response(), 5000, 'response');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'GET /p?y=2 host=svc');
  } finally {
    raw.close();
  }
});

test('header values and repeated headers are preserved both ways', async () => {
  const r = await request(url('/headers'), {
    headers: [
      'host',
      'svc',
      'x-multi',
      'a',
      'x-multi',
      'b',
      'x-value',
      'with "quotes", commas  and  spaces',
      'cookie',
      'k1=v1',
    ],
  });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.headers['set-cookie'], ['a=1; Path=/', 'b=2; HttpOnly', 'c=3, with comma']);
  assert.equal(r.headers['x-weird'], 'v1, "quoted, comma"  two  spaces');
  const list = r.headers['x-list'];
  assert.deepEqual(Array.isArray(list) ? list : String(list).split(', '), ['one', 'two']);
  const seen = (await r.body.json()) as { headers: Record<string, string>; raw: string[] };
  const raw: [string, string][] = [];
  for (let i = 0; i < seen.raw.length; i += 2) raw.push([seen.raw[i].toLowerCase(), seen.raw[i + 1]]);
  const multi = raw.filter(([k]) => k === 'x-multi').map(([, v]) => v);
  assert.deepEqual(multi.join(', ').split(', '), ['a', 'b']);
  assert.equal(seen.headers['x-value'], 'with "quotes", commas  and  spaces');
  assert.equal(seen.headers.cookie, 'k1=v1');
  // curl shows the repeated Set-Cookie lines as they came.
  const c = await curl11('-D', '-', '-o', '/dev/null', url('/headers'));
  const lines = c.stdout
    .toString()
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith('set-cookie:'));
  assert.equal(lines.length, 3, c.stdout.toString());
});

test('hop-by-hop headers are not forwarded in either direction', async () => {
  const raw = await RawHttp.connect(outPort);
  try {
    raw.write(
      'GET /headers HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, x-drop\r\nx-drop: secret\r\n' +
        'Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n' +
        'TE: deflate\r\nx-keep: yes\r\n\r\n',
    );
    const res = await within(raw.response(), 5000, 'response');
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body.toString()) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-keep'], 'yes');
    for (const h of ['x-drop', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te'])
      assert.equal(seen.headers[h], undefined, `${h} reached the app`);
    const names = res.headers.map(([k]) => k);
    assert.ok(!names.includes('x-resp-drop'), 'header named in the app’s Connection reached the client');
    assert.ok(!res.headers.some(([k, v]) => k === 'keep-alive' && v === 'timeout=99'));
    assert.ok(!res.headers.some(([k, v]) => k === 'connection' && v.includes('x-resp-drop')));
  } finally {
    raw.close();
  }
});
