/**
 * Issue 9, "nothing a peer sends may crash the proxy", HTTP/2 side: requests whose body fails
 * before any layer listens, responses Node's HTTP/2 refuses to write, streams reset while
 * the upstream call is under way. Raw frames against real `hexmesh proxy` processes, on the
 * outbound listener, the inbound listener (plaintext and mTLS) and a gRPC sidecar; after each
 * case every process is alive and still serves.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  startHostileMesh,
  h2Request,
  requestFields,
  type HostileMesh,
  type Target,
} from '../support/hostile-mesh.ts';
import { H2, h2Frame, h2Open, hpackLiteral, parseFrames, rawExchange } from '../support/raw.ts';

let mesh: HostileMesh;

before(async () => {
  mesh = await startHostileMesh();
});
after(async () => {
  await mesh?.close();
});

function rst(streamId: number, code = 8 /* CANCEL */): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return h2Frame(H2.RST_STREAM, 0, streamId, p);
}

/** DATA frames of `n` bytes in total, 16 KiB each, the last without END_STREAM. */
function dataFrames(streamId: number, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < n; off += 16_384)
    out.push(h2Frame(H2.DATA, 0, streamId, Buffer.alloc(Math.min(16_384, n - off), 0x61)));
  return out;
}

/** Everything in one write, then give the proxy half a second with the connection open. */
async function attack(t: Target, frames: Buffer[]): Promise<void> {
  await rawExchange(t.port(), [Buffer.concat([h2Open(), ...frames])], { timeoutMs: 500, tls: t.tls });
}

const CASES: { name: string; frames: (t: Target) => Buffer[] }[] = [
  {
    // First, so the gRPC sidecars' connections to their app (and the client's to them) are cold.
    name: '64 KiB body then RST_STREAM while the upstream connection is cold',
    frames: (t) => [
      h2Frame(H2.HEADERS, H2.END_HEADERS, 1, hpackLiteral(requestFields(t))),
      // Within the initial 65,535-byte window.
      ...dataFrames(1, 65_000),
      rst(1),
    ],
  },
  {
    name: 'HEADERS + DATA + RST_STREAM in one write',
    frames: (t) => [
      h2Frame(H2.HEADERS, H2.END_HEADERS, 1, hpackLiteral(requestFields(t))),
      h2Frame(H2.DATA, 0, 1, Buffer.from('abc')),
      rst(1),
    ],
  },
  {
    name: 'content-length that disagrees with the DATA sent',
    frames: (t) => [
      h2Frame(H2.HEADERS, H2.END_HEADERS, 1, hpackLiteral(requestFields(t, [['content-length', '10']]))),
      h2Frame(H2.DATA, H2.END_STREAM, 1, Buffer.from('abc')),
    ],
  },
  {
    name: 'content-length smaller than the DATA sent',
    frames: (t) => [
      h2Frame(H2.HEADERS, H2.END_HEADERS, 1, hpackLiteral(requestFields(t, [['content-length', '1']]))),
      h2Frame(H2.DATA, 0, 1, Buffer.from('abc')),
      h2Frame(H2.DATA, H2.END_STREAM, 1, Buffer.from('def')),
    ],
  },
  {
    name: 'many streams with bodies, each reset right away',
    frames: (t) =>
      Array.from({ length: 50 }, (_, i) => [
        h2Frame(H2.HEADERS, H2.END_HEADERS, 2 * i + 1, hpackLiteral(requestFields(t))),
        h2Frame(H2.DATA, 0, 2 * i + 1, Buffer.from('x')),
        rst(2 * i + 1),
      ]).flat(),
  },
  {
    name: 'body cut by RST_STREAM with an error code (PROTOCOL_ERROR)',
    frames: (t) => [
      h2Frame(H2.HEADERS, H2.END_HEADERS, 1, hpackLiteral(requestFields(t))),
      ...dataFrames(1, 20_000),
      rst(1, 1),
    ],
  },
];

for (const c of CASES) {
  test(`HTTP/2 ${c.name}: no listener's process dies, each still serves`, async () => {
    for (const t of mesh.targets) {
      await attack(t, c.frames(t));
      // Let the upstream side of the reset play out (connects, aborts) before checking.
      await new Promise((r) => setTimeout(r, 200));
      await mesh.assertServes(t);
    }
  });
}

test('HTTP/2 connection closed mid-body (TCP FIN after a partial DATA): processes survive', async () => {
  for (const t of mesh.targets) {
    const r = await rawExchange(
      t.port(),
      [
        h2Open(),
        h2Frame(H2.HEADERS, H2.END_HEADERS, 1, hpackLiteral(requestFields(t))),
        ...dataFrames(1, 5000),
      ],
      { timeoutMs: 300, endAfterWrite: true, tls: t.tls },
    );
    assert.ok(r.data.length > 0);
    await mesh.assertServes(t);
  }
});

test('HTTP/2 client resets while the upstream call is under way; the late response is discarded', async () => {
  for (const t of mesh.targets.filter((x) => !x.grpc)) {
    const fields = requestFields(t, [], '/slow', 'GET');
    await rawExchange(
      t.port(),
      [
        Buffer.concat([
          h2Open(),
          h2Frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, 1, hpackLiteral(fields)),
        ]),
      ],
      { timeoutMs: 100, tls: t.tls },
    );
    await new Promise((r) => setTimeout(r, 500));
    await mesh.assertServes(t);
  }
});

test('an upstream response with two content-type fields (single-valued in HTTP/2): answered or reset, never a crash', async () => {
  for (const t of mesh.targets.filter((x) => !x.grpc)) {
    await h2Request(t, '/dup-content-type').catch((err: Error) =>
      assert.match(err.message, /RST_STREAM|stream/i),
    );
    await mesh.assertServes(t);
  }
});

test('a request body that fails before any layer listens is reported as such on the wire', async () => {
  // The stream is answered or reset; the connection stays usable for other streams.
  const t = mesh.targets[0];
  const fields = requestFields(t, [['content-length', '10']]);
  const ok: [string, string][] = [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':authority', t.authority],
    [':path', '/after'],
  ];
  const r = await rawExchange(
    t.port(),
    [
      Buffer.concat([
        h2Open(),
        h2Frame(H2.HEADERS, H2.END_HEADERS, 1, hpackLiteral(fields)),
        h2Frame(H2.DATA, H2.END_STREAM, 1, Buffer.from('abc')),
        h2Frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, 3, hpackLiteral(ok)),
      ]),
    ],
    {
      timeoutMs: 5000,
      until: (d) => parseFrames(d).some((f) => f.streamId === 3 && (f.flags & H2.END_STREAM) !== 0),
    },
  );
  const frames = parseFrames(r.data);
  assert.ok(
    frames.some((f) => f.type === H2.RST_STREAM && f.streamId === 1),
    'stream 1 (bad content-length) is reset',
  );
  assert.ok(
    frames.some((f) => f.type === H2.HEADERS && f.streamId === 3),
    'stream 3 on the same connection is answered',
  );
  mesh.assertAlive();
});
