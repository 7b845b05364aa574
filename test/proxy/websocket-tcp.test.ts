/**
 * WebSocket (HTTP/1.1 Upgrade) and opaque TCP end to end through two sidecars: a per-upstream
 * local port tunnelling to the peer's inbound listener, and protocol detection on the inbound
 * listener for clients that speak first, and for server-first protocols (detection timeout).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { within } from '../support/clients.ts';
import { startHttpServer, startPair, type Pair } from '../support/mesh.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------- WebSocket

let wsApp: Awaited<ReturnType<typeof startHttpServer>>;
let wss: WebSocketServer;
let wsMesh: Pair;
const serverCloses: { code: number; reason: string }[] = [];

before(async () => {
  wsApp = await startHttpServer((_req, res) => res.end('plain http'));
  wss = new WebSocketServer({ server: wsApp.server });
  wss.on('connection', (ws, req) => {
    ws.send(`hello ${req.url} host=${req.headers.host} proto=${ws.protocol}`);
    ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
    ws.on('close', (code, reason) => serverCloses.push({ code, reason: reason.toString() }));
  });
  wsMesh = await startPair({ service: 'chat', appPort: wsApp.port });
});

after(async () => {
  await wsMesh.close();
  for (const c of wss.clients) c.terminate();
  wss.close();
  await wsApp.close();
});

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return within(
    new Promise((resolve) =>
      ws.once('message', (data: RawData, binary: boolean) => resolve({ data: data as Buffer, binary })),
    ),
    5000,
    'websocket message',
  );
}

test('WebSocket echo through the mesh: text, binary, close handshake', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${wsMesh.client.addr.outbound.port}/room/1?x=y`, ['chat.v1'], {
    headers: { host: 'chat' },
  });
  ws.on('error', () => {});
  const greeting = nextMessage(ws);
  await within(new Promise((r, j) => ws.once('open', r).once('error', j)), 5000, 'open');
  assert.equal(ws.protocol, 'chat.v1', 'subprotocol negotiated end to end');
  assert.equal((await greeting).data.toString(), 'hello /room/1?x=y host=chat proto=chat.v1');

  for (const text of ['hi', 'ünïcödé ✓', 'x'.repeat(200_000)]) {
    const m = nextMessage(ws);
    ws.send(text);
    const got = await m;
    assert.equal(got.binary, false);
    assert.equal(got.data.toString(), text);
  }
  const bin = randomBytes(1 << 20);
  const m = nextMessage(ws);
  ws.send(bin);
  const got = await m;
  assert.equal(got.binary, true);
  assert.equal(sha(got.data), sha(bin));

  const closed = within(
    new Promise<{ code: number; reason: string }>((r) =>
      ws.once('close', (code, reason) => r({ code, reason: reason.toString() })),
    ),
    5000,
    'close',
  );
  ws.close(4001, 'bye now');
  assert.deepEqual(await closed, { code: 4001, reason: 'bye now' });
  const until = Date.now() + 2000;
  while (serverCloses.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(serverCloses.at(-1), { code: 4001, reason: 'bye now' });
});

test('WebSocket to an unknown service is refused with an error response', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${wsMesh.client.addr.outbound.port}/`, {
    headers: { host: 'nobody' },
  });
  const status = await within(
    new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        ws.terminate();
      });
      ws.on('error', () => resolve(-1));
    }),
    5000,
    'refusal',
  );
  assert.equal(status, 404);
});

// ---------------------------------------------------------------- opaque TCP

const BANNER = 'HELLO server-first\r\n';
let tcpApp: net.Server;
let tcpAppPort = 0;
const appSockets = new Set<net.Socket>();
let tcpMesh: Pair;
let dbPort = 0;

before(async () => {
  // Server-first: writes a banner as soon as a connection arrives, then echoes; half-close aware.
  tcpApp = net.createServer({ allowHalfOpen: true }, (s) => {
    appSockets.add(s);
    s.on('close', () => appSockets.delete(s));
    s.on('error', () => {});
    s.write(BANNER);
    s.pipe(s);
  });
  await new Promise<void>((r) => tcpApp.listen(0, '127.0.0.1', r));
  tcpAppPort = (tcpApp.address() as net.AddressInfo).port;
  tcpMesh = await startPair({
    service: 'db',
    appPort: tcpAppPort,
    appProtocol: 'tcp',
    servicePorts: [{ port: 5432, protocol: 'tcp' }],
    clientProxy: { upstreams: [{ service: 'db', localPort: 0 }] },
  });
  dbPort = tcpMesh.client.addr.upstreams.db.port;
});

after(async () => {
  await tcpMesh.close();
  for (const s of appSockets) s.destroy();
  await new Promise((r) => tcpApp.close(r));
});

/** Connect and collect everything received; `until(buf)` decides when the read is complete. */
function tcpSession(port: number) {
  const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let buf = Buffer.alloc(0);
  let ended = false;
  const waiters: (() => void)[] = [];
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (const w of waiters.splice(0)) w();
  });
  sock.on('end', () => {
    ended = true;
    for (const w of waiters.splice(0)) w();
  });
  sock.on('error', () => {});
  return {
    sock,
    connected: new Promise<void>((r) => sock.once('connect', () => r())),
    get received() {
      return buf;
    },
    get ended() {
      return ended;
    },
    async waitFor(pred: () => boolean, ms: number, what: string) {
      const t = within(
        (async () => {
          while (!pred()) await new Promise<void>((r) => waiters.push(r));
        })(),
        ms,
        what,
      );
      return t;
    },
  };
}

test('TCP through a per-upstream local port: a server-first banner arrives without waiting for detection', async (t) => {
  const s = tcpSession(dbPort);
  t.after(() => s.sock.destroy());
  await s.connected;
  const t0 = performance.now();
  await s.waitFor(() => s.received.length >= BANNER.length, 5000, 'banner');
  const ms = performance.now() - t0;
  assert.equal(s.received.toString(), BANNER);
  // The tunnel header tells the peer's inbound listener what this is: no 1 s detection wait.
  assert.ok(ms < 900, `banner after ${Math.round(ms)} ms`);
});

test('TCP through the tunnel: bytes both ways intact, half-close honoured', async (t) => {
  const s = tcpSession(dbPort);
  t.after(() => s.sock.destroy());
  await s.connected;
  await s.waitFor(() => s.received.length >= BANNER.length, 5000, 'banner');
  const small = Buffer.from([0, 1, 2, 3, 255, 13, 10]);
  s.sock.write(small);
  await s.waitFor(() => s.received.length >= BANNER.length + small.length, 5000, 'small echo');
  assert.deepEqual(s.received.subarray(BANNER.length), small);
  const big = randomBytes(4 << 20);
  s.sock.end(big); // write, then half-close: the echo must still come back in full
  await s.waitFor(() => s.ended, 15_000, 'echo and end');
  const echoed = s.received.subarray(BANNER.length + small.length);
  assert.equal(echoed.length, big.length);
  assert.equal(sha(echoed), sha(big));
});

test('inbound listener: a non-HTTP client-first protocol is detected as TCP and forwarded at once', async (t) => {
  const s = tcpSession(tcpMesh.server.inboundPort);
  t.after(() => s.sock.destroy());
  await s.connected;
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
  const t0 = performance.now();
  s.sock.write(hello);
  await s.waitFor(() => s.received.length >= BANNER.length + hello.length, 5000, 'banner and echo');
  const ms = performance.now() - t0;
  assert.equal(s.received.subarray(0, BANNER.length).toString(), BANNER);
  assert.deepEqual(s.received.subarray(BANNER.length), hello);
  assert.ok(ms < 900, `forwarded after ${Math.round(ms)} ms (no detection timeout)`);
});

test('inbound listener: a client that sends nothing is forwarded after the 1 s detection timeout', async (t) => {
  const s = tcpSession(tcpMesh.server.inboundPort);
  t.after(() => s.sock.destroy());
  await s.connected;
  const t0 = performance.now();
  await s.waitFor(() => s.received.length >= BANNER.length, 5000, 'banner');
  const ms = performance.now() - t0;
  assert.equal(s.received.toString(), BANNER);
  assert.ok(ms >= 950 && ms < 3000, `server-first banner after ${Math.round(ms)} ms`);
  s.sock.write('after banner');
  await s.waitFor(() => s.received.length >= BANNER.length + 12, 5000, 'echo');
  assert.equal(s.received.subarray(BANNER.length).toString(), 'after banner');
});
