/**
 * Issue 9, HTTP/2 limits of the downstream listeners (real `hexmesh proxy` processes, raw
 * frames): SETTINGS_MAX_CONCURRENT_STREAMS is advertised (proxy.maxConcurrentStreams) and
 * enforced; a rapid-reset flood (CVE-2023-44487) gets GOAWAY(ENHANCE_YOUR_CALM) and the
 * connection is closed; a connection nghttp2 answered with GOAWAY is closed within seconds
 * (it stayed open for the 5 min idle timeout); a healthy idle client answers the liveness
 * pings and keeps its connection until proxy.idleTimeout.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { startHostileMesh, type HostileMesh, type Target } from '../support/hostile-mesh.ts';
import { H2, h2Frame, h2Open, hpackLiteral, parseFrames, rawExchange } from '../support/raw.ts';

const MAX_STREAMS = 10;
const IDLE_TIMEOUT_MS = 5000;
const { NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS } =
  http2.constants;

let mesh: HostileMesh;
/** The HTTP/1 targets: outbound, inbound plaintext, inbound mTLS. */
let targets: Target[];

before(async () => {
  mesh = await startHostileMesh({ maxConcurrentStreams: MAX_STREAMS, idleTimeout: `${IDLE_TIMEOUT_MS}ms` });
  targets = mesh.targets.filter((t) => !t.grpc);
});
after(async () => {
  await mesh?.close();
});

function fields(t: Target, method = 'GET'): [string, string][] {
  return [
    [':method', method],
    [':scheme', t.tls ? 'https' : 'http'],
    [':authority', t.authority],
    [':path', '/limits'],
  ];
}

function rstPayload(code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return p;
}

function settingsOf(data: Buffer): Map<number, number> {
  const out = new Map<number, number>();
  for (const f of parseFrames(data.subarray(0)))
    if (f.type === H2.SETTINGS && (f.flags & H2.ACK) === 0)
      for (let i = 0; i + 6 <= f.payload.length; i += 6)
        out.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
  return out;
}

test('SETTINGS_MAX_CONCURRENT_STREAMS is advertised on every listener (proxy.maxConcurrentStreams)', async () => {
  for (const t of mesh.targets) {
    const r = await rawExchange(t.port(), [h2Open()], {
      timeoutMs: 3000,
      tls: t.tls,
      until: (d) => settingsOf(d).size > 0,
    });
    assert.equal(settingsOf(r.data).get(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), MAX_STREAMS, t.name);
  }
});

test('streams over the limit are refused (RST_STREAM REFUSED_STREAM), the others are served', async () => {
  for (const t of targets) {
    const n = MAX_STREAMS + 5;
    // Open n streams whose bodies never end (POST without END_STREAM): none can finish.
    const frames = Array.from({ length: n }, (_, i) =>
      h2Frame(H2.HEADERS, H2.END_HEADERS, 2 * i + 1, hpackLiteral(fields(t, 'POST'))),
    );
    const r = await rawExchange(t.port(), [Buffer.concat([h2Open(), ...frames])], {
      timeoutMs: 5000,
      tls: t.tls,
      until: (d) => parseFrames(d).filter((f) => f.type === H2.RST_STREAM).length >= n - MAX_STREAMS,
    });
    const refused = parseFrames(r.data)
      .filter((f) => f.type === H2.RST_STREAM && f.payload.readUInt32BE(0) === NGHTTP2_REFUSED_STREAM)
      .map((f) => f.streamId);
    assert.deepEqual(
      refused,
      Array.from({ length: n - MAX_STREAMS }, (_, i) => 2 * (MAX_STREAMS + i) + 1),
      `${t.name}: the streams past ${MAX_STREAMS} are refused`,
    );
    await mesh.assertServes(t);
  }
});

test('rapid reset (HEADERS + RST_STREAM, 600 times on one connection): GOAWAY ENHANCE_YOUR_CALM, connection closed', async () => {
  for (const t of targets) {
    const before = mesh.seen.h1;
    const frames: Buffer[] = [];
    for (let i = 0; i < 600; i++) {
      const id = 2 * i + 1;
      frames.push(h2Frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, id, hpackLiteral(fields(t))));
      frames.push(h2Frame(H2.RST_STREAM, 0, id, rstPayload(http2.constants.NGHTTP2_CANCEL)));
    }
    const r = await rawExchange(t.port(), [Buffer.concat([h2Open(), ...frames])], {
      timeoutMs: 10_000,
      tls: t.tls,
    });
    const goaway = parseFrames(r.data).find((f) => f.type === H2.GOAWAY);
    assert.ok(goaway, `${t.name}: GOAWAY expected`);
    assert.equal(goaway.payload.readUInt32BE(4), NGHTTP2_ENHANCE_YOUR_CALM, `${t.name}: GOAWAY code`);
    assert.ok(r.closed && r.elapsed < 9000, `${t.name}: the proxy closes the connection (${r.elapsed} ms)`);
    assert.ok(mesh.seen.h1 - before < 600, `${t.name}: not every reset stream reached the app`);
    await mesh.assertServes(t);
  }
});

test('a connection answered with GOAWAY (protocol error) is closed within seconds, not kept for idleTimeout', async () => {
  for (const t of mesh.targets) {
    // DATA on stream 0: nghttp2 sends GOAWAY(PROTOCOL_ERROR) and reads nothing more.
    const r = await rawExchange(t.port(), [h2Open(), h2Frame(H2.DATA, 0, 0, Buffer.from('xx'))], {
      timeoutMs: 15_000,
      tls: t.tls,
    });
    assert.ok(
      parseFrames(r.data).some((f) => f.type === H2.GOAWAY),
      `${t.name}: GOAWAY expected`,
    );
    assert.ok(r.closed && r.elapsed < 12_000, `${t.name}: closed after ${r.elapsed} ms`);
  }
});

test('a healthy idle client answers the pings and keeps its connection until idleTimeout, then gets GOAWAY', async () => {
  const t = targets[0];
  const session = http2.connect(`http://127.0.0.1:${t.port()}`);
  session.on('error', () => {});
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': '/idle', ':authority': t.authority });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', reject);
      s.resume();
    });
  try {
    assert.equal(await get(), 200);
    // Longer than the first ping probes (1 s, then 2 s), shorter than idleTimeout.
    await new Promise((r) => setTimeout(r, IDLE_TIMEOUT_MS - 1500));
    assert.ok(!session.closed && !session.destroyed, 'the idle session is still open');
    assert.equal(await get(), 200);
    const t0 = Date.now();
    const goaway = await new Promise<number>((resolve) => session.once('goaway', (code) => resolve(code)));
    assert.equal(goaway, http2.constants.NGHTTP2_NO_ERROR);
    const waited = Date.now() - t0;
    assert.ok(
      waited >= IDLE_TIMEOUT_MS - 1500 && waited < IDLE_TIMEOUT_MS + 5000,
      `GOAWAY after ${waited} ms`,
    );
  } finally {
    session.destroy();
  }
});
