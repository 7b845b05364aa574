import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { classify, detect, TUNNEL_HEADER_LENGTH, tunnelHeader } from './detect.ts';

const b = (s: string) => Buffer.from(s, 'latin1');
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

test('the HTTP/2 preface is http2; any proper prefix of it asks for more', () => {
  assert.equal(classify(b(PREFACE)), 'http2');
  assert.equal(classify(Buffer.concat([b(PREFACE), Buffer.from([0, 0, 0, 4])])), 'http2');
  for (let n = 1; n < PREFACE.length; n++)
    assert.equal(classify(b(PREFACE.slice(0, n))), undefined, `n=${n}`);
});

test('a request line is http1 as soon as the method and a space are seen', () => {
  for (const m of [
    'GET',
    'POST',
    'PUT',
    'DELETE',
    'HEAD',
    'OPTIONS',
    'PATCH',
    'CONNECT',
    'TRACE',
    'PROPFIND',
  ])
    assert.equal(classify(b(`${m} / HTTP/1.1\r\n`)), 'http1', m);
  assert.equal(classify(b('GET ')), 'http1');
  // `PRI /` looks like the preface until the 5th byte, then it is an (odd) HTTP/1 method.
  assert.equal(classify(b('PRI /x HTTP/1.1\r\n')), 'http1');
});

test('a partial method asks for more bytes', () => {
  for (const s of ['G', 'GE', 'GET', 'POS', 'OPTION', 'H', 'HE', 'HEAD'])
    assert.equal(classify(b(s)), undefined, s);
  assert.equal(classify(Buffer.alloc(0)), undefined);
});

test('the tunnel header is recognised once complete', () => {
  const h = tunnelHeader(5432);
  assert.equal(h.length, TUNNEL_HEADER_LENGTH);
  assert.equal(h.readUInt16BE(4), 5432);
  assert.equal(classify(h), 'tunnel');
  assert.equal(classify(Buffer.concat([h, b('\x00\x01binary')])), 'tunnel');
  for (let n = 1; n < h.length; n++) assert.equal(classify(h.subarray(0, n)), undefined, `n=${n}`);
});

test('garbage and other protocols are tcp', () => {
  assert.equal(classify(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), 'tcp'); // TLS ClientHello
  assert.equal(classify(b('\x00\x00\x00\x08\x04\xd2\x16\x2f')), 'tcp'); // Postgres SSLRequest
  assert.equal(classify(b(' GET /')), 'tcp'); // leading space
  assert.equal(classify(b('GET\r\n')), 'tcp');
  assert.equal(classify(b('PING\r\n')), 'tcp'); // Redis inline command
  assert.equal(classify(b('A'.repeat(25))), 'tcp'); // longer than any method
  assert.equal(classify(b('HELO')), undefined); // could still be a method...
  assert.equal(classify(b('HELO\r\n')), 'tcp'); // ...until the line ends without a space
});

test('issue 9: a request line after leading empty lines (RFC 9112 §2.2) is http1, not opaque tcp', () => {
  for (const lead of ['\r\n', '\n', '\r\n\r\n', '\r\n'.repeat(16)])
    assert.equal(classify(b(`${lead}GET /admin HTTP/1.1\r\n`)), 'http1', JSON.stringify(lead));
  // Still waiting while only empty lines (or part of a method) arrived.
  assert.equal(classify(b('\r\n')), undefined);
  assert.equal(classify(b('\r\nGE')), undefined);
  // Beyond 32 empty lines, or an empty line then garbage, it is not HTTP.
  assert.equal(classify(b(`${'\r\n'.repeat(17)}GET / HTTP/1.1\r\n`)), 'tcp');
  assert.equal(classify(b('\r\n GET /')), 'tcp');
  assert.equal(classify(b('\r\n\x00\x01')), 'tcp');
  // The HTTP/2 preface and the tunnel header only count at the very start.
  assert.equal(classify(b(`\r\n${PREFACE}`)), 'http1');
  assert.equal(classify(Buffer.concat([b('\r\n'), tunnelHeader(80)])), 'tcp');
});

/** Byte strings biased towards the interesting prefixes, so the property explores the branches. */
const interesting = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
  fc
    .tuple(
      fc.constantFrom(
        PREFACE,
        'GET / HTTP/1.1\r\n',
        '\r\n\r\nGET / HTTP/1.1\r\n',
        'OPTIONS ',
        'HXMT\x15\x38',
        'PRI ',
        'HEAD',
        'xyz',
      ),
      fc.nat({ max: 40 }),
      fc.uint8Array({ maxLength: 20 }),
    )
    .map(([s, n, tail]) => Buffer.concat([b(s).subarray(0, n), Buffer.from(tail)])),
);

test('property: classify never throws, and once a prefix decides, more bytes never change it', () => {
  fc.assert(
    fc.property(interesting, fc.uint8Array({ maxLength: 40 }), (buf, more) => {
      for (let n = 0; n <= buf.length; n++) {
        const d = classify(buf.subarray(0, n));
        if (d === undefined) continue;
        assert.equal(classify(buf), d);
        assert.equal(classify(Buffer.concat([buf, Buffer.from(more)])), d);
        return;
      }
    }),
    { numRuns: 2000 },
  );
});

test('detect: bytes split across packets are gathered; silence falls back to tcp after the timeout', async (t) => {
  const results: Promise<{ kind: string; head: string; ms: number }>[] = [];
  const server = net.createServer((s) => {
    const t0 = performance.now();
    results.push(
      detect(s, 300).then((d) => ({
        kind: d.kind,
        head: d.head.toString('latin1'),
        ms: performance.now() - t0,
      })),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const clients: net.Socket[] = [];
  t.after(() => {
    for (const c of clients) c.destroy();
    server.close();
  });
  const connect = () =>
    new Promise<net.Socket>((r) => {
      const c = net.connect(port, '127.0.0.1', () => r(c));
      clients.push(c);
    });
  const a = await connect();
  a.write('GE');
  await new Promise((r) => setTimeout(r, 50));
  a.write('T /x HTTP/1.1\r\n');
  while (results.length < 1) await new Promise((r) => setTimeout(r, 5));
  const first = await results[0];
  assert.equal(first.kind, 'http1');
  assert.equal(first.head, 'GET /x HTTP/1.1\r\n');
  await connect(); // silent client
  while (results.length < 2) await new Promise((r) => setTimeout(r, 5));
  const silent = await results[1];
  assert.equal(silent.kind, 'tcp');
  assert.equal(silent.head, '');
  assert.ok(silent.ms >= 280, `fell back after ${silent.ms} ms`);
});
