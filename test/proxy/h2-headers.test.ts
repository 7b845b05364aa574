/**
 * Issue 9: HTTP/2 request header fields that are not valid HTTP are refused, not silently
 * dropped by nghttp2 with the rest forwarded. Raw HPACK-encoded frames (node:http2 would
 * refuse to send them) against real `hexmesh proxy` processes on every listener: CR, LF,
 * NUL or edge whitespace in a value, a space, colon or upper-case letter in a name, a `host`
 * naming another authority than `:authority`, and CONNECT (405). The answer is a 400 (405)
 * with `x-hexmesh-error: bad-request` (gRPC: INVALID_ARGUMENT, trailers-only) or a stream
 * reset by nghttp2, and the app never sees the request.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { HpackDecoder } from '../../src/proxy/listen/hpack-decoder.ts';
import { fieldProblem } from '../../src/proxy/listen/h2-header-inspector.ts';
import { startHostileMesh, requestFields, type HostileMesh, type Target } from '../support/hostile-mesh.ts';
import { H2, h2Frame, h2Open, h2Settled, hpackLiteral, parseFrames, rawExchange } from '../support/raw.ts';

let mesh: HostileMesh;

before(async () => {
  mesh = await startHostileMesh();
});
after(async () => {
  await mesh?.close();
});

interface Answer {
  /** Response header fields of stream 1, or undefined if it was reset. */
  headers?: Map<string, string>;
  rstCode?: number;
}

/** Send one request (HEADERS with END_STREAM) on stream 1 and read the answer. */
async function ask(t: Target, fields: [string, string][]): Promise<Answer> {
  const r = await rawExchange(
    t.port(),
    [h2Open(), h2Frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, 1, hpackLiteral(fields))],
    {
      timeoutMs: 5000,
      tls: t.tls,
      until: h2Settled,
    },
  );
  const decoder = new HpackDecoder();
  for (const f of parseFrames(r.data)) {
    if (f.type === H2.HEADERS) {
      const headers = new Map(decoder.decode(f.payload));
      if (f.streamId === 1) return { headers };
    }
    if (f.type === H2.RST_STREAM && f.streamId === 1) return { rstCode: f.payload.readUInt32BE(0) };
  }
  assert.fail(`${t.name}: no answer for stream 1 (${r.data.length} bytes)`);
}

/** A request to `/hdr` with `extra` fields: GET, POST (gRPC-style) to a gRPC target. */
const request = (t: Target, extra: [string, string][], method = t.grpc ? 'POST' : 'GET') =>
  requestFields(t, extra, '/hdr', method);

function assertRefused(t: Target, a: Answer, status: number, cause: RegExp | null): void {
  if (a.rstCode !== undefined) {
    // nghttp2 itself resets some (upper-case names): a stream error is a refusal too.
    assert.ok(cause === null, `${t.name}: expected ${status}, got RST_STREAM ${a.rstCode}`);
    return;
  }
  const h = a.headers!;
  assert.equal(h.get('x-hexmesh-error'), 'bad-request', `${t.name}: ${JSON.stringify([...h])}`);
  if (t.grpc) {
    assert.equal(h.get(':status'), '200');
    assert.equal(h.get('grpc-status'), '3', `${t.name}: INVALID_ARGUMENT`);
    if (cause) assert.match(decodeURIComponent(h.get('grpc-message') ?? ''), cause);
  } else assert.equal(h.get(':status'), String(status), t.name);
}

const BAD: { name: string; field: [string, string]; cause: RegExp | null }[] = [
  { name: 'CR LF in a value', field: ['x-a', 'a\r\nx-injected: 1'], cause: /invalid value for header x-a/ },
  { name: 'LF in a value', field: ['x-a', 'a\nb'], cause: /invalid value for header x-a/ },
  { name: 'NUL in a value', field: ['x-a', 'a\0b'], cause: /invalid value for header x-a/ },
  { name: 'leading space in a value', field: ['x-a', ' a'], cause: /invalid value for header x-a/ },
  { name: 'a space in a name', field: ['x a', 'b'], cause: /invalid header name "x a"/ },
  { name: 'a colon in a name', field: ['x:a', 'b'], cause: /invalid header name "x:a"/ },
  { name: 'an upper-case name', field: ['X-Up', 'b'], cause: null },
];

for (const c of BAD) {
  test(`HTTP/2 ${c.name}: refused with 400 bad-request (or a stream error), app untouched`, async () => {
    const before = mesh.seen.h1 + mesh.seen.grpc;
    for (const t of mesh.targets) assertRefused(t, await ask(t, request(t, [c.field])), 400, c.cause);
    assert.equal(mesh.seen.h1 + mesh.seen.grpc, before, 'the request reached an app');
  });
}

test('HTTP/2 host naming another authority than :authority: 400 bad-request', async () => {
  const before = mesh.seen.h1 + mesh.seen.grpc;
  for (const t of mesh.targets)
    assertRefused(t, await ask(t, request(t, [['host', 'other.example']])), 400, /differs from :authority/);
  assert.equal(mesh.seen.h1 + mesh.seen.grpc, before);
});

test('HTTP/2 host equal to :authority (case aside) is served', async () => {
  for (const t of mesh.targets) {
    const a = await ask(t, request(t, [['host', t.authority.toUpperCase()]]));
    assert.equal(a.headers?.get(':status'), '200', `${t.name}: ${JSON.stringify(a)}`);
    assert.equal(a.headers?.get('x-hexmesh-error'), undefined);
  }
});

test('HTTP/2 CONNECT: 405 bad-request, not 500 internal', async () => {
  for (const t of mesh.targets.filter((x) => !x.grpc)) {
    const a = await ask(t, [
      [':method', 'CONNECT'],
      [':authority', `${t.authority}:80`],
    ]);
    assert.equal(a.headers?.get(':status'), '405', `${t.name}: ${JSON.stringify(a)}`);
    assert.equal(a.headers?.get('x-hexmesh-error'), 'bad-request');
  }
});

test('HTTP/2 a valid request with many fields, Huffman-coded and indexed by node:http2, is served', async () => {
  // The inspector decodes what real clients send (Huffman, dynamic table) without false alarms.
  for (const t of mesh.targets) await mesh.assertServes(t);
  assert.deepEqual(mesh.seen.badBytes, []);
  assert.deepEqual(mesh.seen.badNames, []);
});

test('fieldProblem: valid fields pass, invalid names and values are named', () => {
  assert.equal(fieldProblem('x-ok', 'a b\tc'), undefined);
  assert.equal(fieldProblem(':path', '/a b'), undefined, 'pseudo-headers are nghttp2s to check');
  assert.match(fieldProblem('x-a', 'a\x7f') ?? '', /invalid value/);
  assert.match(fieldProblem('x-a', 'a ') ?? '', /invalid value/);
  assert.match(fieldProblem('', 'a') ?? '', /invalid header name/);
  fc.assert(
    fc.property(fc.string({ unit: 'binary-ascii' }), fc.string({ unit: 'binary-ascii' }), (name, value) => {
      const p = fieldProblem(name, value);
      const validName = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/.test(name) || name.startsWith(':');
      // eslint-disable-next-line no-control-regex
      const validValue = name.startsWith(':') || !/[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$/.test(value);
      assert.equal(p === undefined, validName && validValue, `${JSON.stringify([name, value])}: ${p}`);
    }),
  );
});
