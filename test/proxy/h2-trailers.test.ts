/**
 * Issue 9 (review): HTTP/2 request trailers. A trailer section (a HEADERS frame with
 * END_STREAM after DATA) is held to the rules of the header section and more (no
 * pseudo-header, nothing connection-specific, nothing routing, authorization or framing read
 * from the headers); a malformed one makes the request malformed (RFC 9113 §8.1.1): the
 * stream is reset or answered 400, and the app never gets a complete request. Before, nghttp2
 * dropped an invalid trailer field and the request reached the app as complete. Valid
 * trailers are not relayed, so nothing in a trailer (a mesh identity header, x-forwarded-*)
 * reaches an app. Real `hexmesh proxy` processes, every listener, HTTP/1 and gRPC apps.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { HpackDecoder } from '../../src/proxy/listen/hpack-decoder.ts';
import { trailerProblem } from '../../src/proxy/listen/h2-header-inspector.ts';
import {
  startHostileMesh,
  h2Connect,
  requestFields,
  type HostileMesh,
  type Target,
} from '../support/hostile-mesh.ts';
import { H2, h2Frame, h2Open, hpackLiteral, parseFrames } from '../support/raw.ts';

let mesh: HostileMesh;

before(async () => {
  mesh = await startHostileMesh();
});
after(async () => {
  await mesh?.close();
});

interface Answer {
  status?: string;
  error?: string;
  rstCode?: number;
  goaway?: number;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Stream 1: HEADERS, DATA, then the trailer frames. `apart`: the trailers are written only
 * once the app has the request in hand (the usual case: the request is already forwarded),
 * else everything goes in one write.
 */
async function send(t: Target, path: string, trailerFrames: Buffer[], apart: boolean): Promise<Answer> {
  const socket = t.tls
    ? tls.connect({ ...t.tls, host: '127.0.0.1', port: t.port() })
    : net.connect(t.port(), '127.0.0.1');
  socket.on('error', () => {});
  const parts: Buffer[] = [];
  let closed = false;
  socket.on('data', (d: Buffer) => parts.push(d));
  socket.on('close', () => (closed = true));
  try {
    await new Promise((r) => socket.once(t.tls ? 'secureConnect' : 'connect', r));
    const head = [
      h2Open(),
      h2Frame(H2.HEADERS, H2.END_HEADERS, 1, hpackLiteral(requestFields(t, [], path))),
      h2Frame(H2.DATA, 0, 1, Buffer.from([0, 0, 0, 0, 0])),
    ];
    if (apart) {
      const arrived = () => mesh.seen.h1 + mesh.seen.grpc;
      const seen = arrived();
      socket.write(Buffer.concat(head));
      await waitFor(`${t.name}: the request at the app`, () => arrived() > seen);
      socket.write(Buffer.concat(trailerFrames));
    } else socket.write(Buffer.concat([...head, ...trailerFrames]));
    const decoder = new HpackDecoder();
    let answer: Answer | undefined;
    await waitFor(`${t.name}: an answer on stream 1`, () => {
      for (const f of parseFrames(Buffer.concat(parts))) {
        if (f.type === H2.HEADERS && f.streamId === 1 && !answer) {
          const h = new Map(decoder.decode(f.payload));
          answer = { status: h.get(':status'), error: h.get('x-hexmesh-error') };
          if (t.grpc && h.get('grpc-status')) answer.status = `grpc ${h.get('grpc-status')}`;
        }
        if (f.type === H2.RST_STREAM && f.streamId === 1) answer = { rstCode: f.payload.readUInt32BE(0) };
        if (f.type === H2.GOAWAY) answer ??= { goaway: f.payload.readUInt32BE(4) };
      }
      return answer !== undefined || closed;
    });
    return answer ?? { goaway: -1 };
  } finally {
    socket.destroy();
  }
}

function trailers(fields: [string, string][]): Buffer[] {
  return [h2Frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, 1, hpackLiteral(fields))];
}

function assertRefused(t: Target, a: Answer, what: string): void {
  const ok =
    a.rstCode === http2.constants.NGHTTP2_PROTOCOL_ERROR ||
    a.goaway !== undefined ||
    a.error === 'bad-request' ||
    (t.grpc && a.status === 'grpc 3');
  assert.ok(ok, `${t.name} ${what}: not refused: ${JSON.stringify(a)}`);
}

const BAD: { name: string; field: [string, string] }[] = [
  { name: 'CR LF in a value', field: ['x-a', 'a\r\nx-injected: 1'] },
  { name: 'NUL in a value', field: ['x-a', 'a\0b'] },
  { name: 'a space in a name', field: ['x a', 'b'] },
  { name: 'a pseudo-header', field: [':path', '/admin'] },
  { name: 'a connection-specific field', field: ['connection', 'close'] },
  { name: 'te other than trailers', field: ['te', 'gzip'] },
  { name: 'content-length', field: ['content-length', '0'] },
  { name: 'authorization', field: ['authorization', 'Bearer forged'] },
  { name: 'host', field: ['host', 'admin.internal'] },
];

let seq = 0;
for (const c of BAD) {
  test(`HTTP/2 request trailers with ${c.name}: refused, the app never gets a complete request`, async () => {
    for (const t of mesh.targets)
      for (const apart of [true, false]) {
        const path = `/trailer-${++seq}`;
        const a = await send(t, path, trailers([c.field]), apart);
        assertRefused(t, a, `${c.name} (${apart ? 'after the request was forwarded' : 'one write'})`);
        assert.ok(!mesh.seen.completed.includes(path), `${t.name}: ${path} reached the app complete`);
      }
    for (const t of mesh.targets) await mesh.assertServes(t);
  });
}

test('HTTP/2 request trailers larger than proxy.maxHeaderSize (CONTINUATION frames): refused, the proxy stays up', async () => {
  const block = hpackLiteral([
    ['x-big-1', 'a'.repeat(15_000)],
    ['x-big-2', 'b'.repeat(15_000)],
    ['x-big-3', 'c'.repeat(15_000)],
    ['x-big-4', 'd'.repeat(15_000)],
    ['x-big-5', 'e'.repeat(15_000)],
  ]);
  const frames: Buffer[] = [];
  for (let i = 0; i < block.length; i += 16_000) {
    const last = i + 16_000 >= block.length;
    const chunk = block.subarray(i, i + 16_000);
    frames.push(
      i === 0
        ? h2Frame(H2.HEADERS, H2.END_STREAM | (last ? H2.END_HEADERS : 0), 1, chunk)
        : h2Frame(H2.CONTINUATION, last ? H2.END_HEADERS : 0, 1, chunk),
    );
  }
  for (const t of mesh.targets) {
    const path = `/trailer-${++seq}`;
    const a = await send(t, path, frames, true);
    assertRefused(t, a, 'oversized trailers');
    assert.ok(!mesh.seen.completed.includes(path), `${t.name}: ${path} reached the app complete`);
  }
  for (const t of mesh.targets) await mesh.assertServes(t);
});

test('HTTP/2 valid request trailers (node:http2 client) are served, and none reaches the app: no smuggled identity or x-forwarded-* header', async () => {
  const before = mesh.seen.trailers.length;
  for (const t of mesh.targets) {
    const session = h2Connect(t);
    try {
      const result = await new Promise<{ status: number; grpcStatus?: string }>((resolve, reject) => {
        const s = session.request(
          {
            ':method': 'POST',
            ':path': '/valid-trailers',
            ':authority': t.authority,
            ...(t.grpc ? { 'content-type': 'application/grpc', te: 'trailers' } : {}),
          },
          { waitForTrailers: true },
        );
        s.once('wantTrailers', () =>
          s.sendTrailers({
            'x-checksum': 'abc',
            'x-forwarded-client-cert': 'By=spiffe://hexmesh.test/ns/default/sa/admin',
            'x-forwarded-for': '10.0.0.1',
            'l5d-client-id': 'admin.default.serviceaccount.identity',
            'x-hexmesh-peer': 'spiffe://hexmesh.test/ns/default/sa/admin',
          }),
        );
        s.end(Buffer.from([0, 0, 0, 0, 0]));
        const out: { status: number; grpcStatus?: string } = { status: 0 };
        s.on('response', (h) => (out.status = Number(h[':status'])));
        s.on('trailers', (tr) => (out.grpcStatus = tr['grpc-status'] as string | undefined));
        s.resume();
        s.on('end', () => resolve(out));
        s.on('error', reject);
      });
      assert.equal(result.status, 200, t.name);
      if (t.grpc) assert.equal(result.grpcStatus, '0', t.name);
    } finally {
      session.destroy();
    }
  }
  assert.deepEqual(mesh.seen.trailers.slice(before), [], 'request trailers reached an app');
});

test('trailerProblem: header rules plus no pseudo-header, nothing connection-specific or read from the headers', () => {
  assert.equal(trailerProblem('x-checksum', 'abc'), undefined);
  assert.equal(trailerProblem('grpc-status', '0'), undefined);
  assert.match(trailerProblem(':path', '/x') ?? '', /pseudo-header ":path" in trailers/);
  assert.match(trailerProblem('x-a', 'a\nb') ?? '', /invalid value for header x-a .* in trailers/);
  assert.match(trailerProblem('transfer-encoding', 'chunked') ?? '', /not allowed in trailers/);
  assert.match(trailerProblem('authorization', 'x') ?? '', /not allowed in trailers/);
});
