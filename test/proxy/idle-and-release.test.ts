/**
 * Idle timeouts on tunnels (WebSocket upgrades and opaque TCP, `timeouts.tcpIdle` of the
 * destination's TrafficPolicy, default 1 h) and resources a destroyed proxy gives back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { within } from '../support/clients.ts';
import { startHttpServer, startPair, startProxy } from '../support/mesh.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function policy(service: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: `p-${service}` },
    spec: { targetRef: { name: service }, ...spec },
  };
}

test('a WebSocket idle for timeouts.tcpIdle is closed; one in use is not', async (t) => {
  const app = await startHttpServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server: app.server });
  wss.on('connection', (ws) => ws.on('message', (d, binary) => ws.send(d, { binary })));
  const mesh = await startPair({
    service: 'chat',
    appPort: app.port,
    resources: [policy('chat', { timeouts: { tcpIdle: '600ms' } })],
  });
  t.after(async () => {
    await mesh.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
    await app.close();
  });
  const ws = new WebSocket(`ws://127.0.0.1:${mesh.client.addr.outbound.port}/`, {
    headers: { host: 'chat' },
  });
  ws.on('error', () => {});
  await within(new Promise((r, j) => ws.once('open', r).once('error', j)), 5000, 'open');
  const closed = new Promise<number>((r) => ws.once('close', () => r(performance.now())));
  let isClosed = false;
  void closed.then(() => (isClosed = true));
  // In use for 2 s (three times the idle timeout): a message every 150 ms keeps it open.
  for (let i = 0; i < 13; i++) {
    const echoed = new Promise((r) => ws.once('message', r));
    ws.send(`m${i}`);
    await within(echoed, 5000, `echo ${i}`);
    await sleep(150);
  }
  assert.equal(isClosed, false, 'an active tunnel stays open');
  const idleFrom = performance.now();
  const at = await within(closed, 10_000, 'close after idling');
  assert.ok(at - idleFrom >= 400, `closed ${Math.round(at - idleFrom)} ms after the last byte`);
});

test('an opaque TCP connection idle for timeouts.tcpIdle is closed; one in use is not', async (t) => {
  const appSockets = new Set<net.Socket>();
  const tcpApp = net.createServer((s) => {
    appSockets.add(s);
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => tcpApp.listen(0, '127.0.0.1', r));
  const mesh = await startPair({
    service: 'db',
    appPort: (tcpApp.address() as net.AddressInfo).port,
    appProtocol: 'tcp',
    servicePorts: [{ port: 5432, protocol: 'tcp' }],
    clientProxy: { upstreams: [{ service: 'db', localPort: 0 }] },
    resources: [policy('db', { timeouts: { tcpIdle: '600ms' } })],
  });
  t.after(async () => {
    await mesh.close();
    for (const s of appSockets) s.destroy();
    await new Promise((r) => tcpApp.close(r));
  });
  const c = net.connect(mesh.client.addr.upstreams.db.port, '127.0.0.1');
  c.on('error', () => {});
  const closed = new Promise<number>((r) => c.once('close', () => r(performance.now())));
  let isClosed = false;
  void closed.then(() => (isClosed = true));
  for (let i = 0; i < 13; i++) {
    const echoed = new Promise((r) => c.once('data', r));
    c.write(`m${i}`);
    await within(echoed, 5000, `echo ${i}`);
    await sleep(150);
  }
  assert.equal(isClosed, false, 'an active connection stays open');
  c.resume();
  const idleFrom = performance.now();
  const at = await within(closed, 10_000, 'close after idling');
  assert.ok(at - idleFrom >= 400, `closed ${Math.round(at - idleFrom)} ms after the last byte`);
});

/** File descriptors of this process open on `path`. */
function openFds(path: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

test('destroy() closes the access-log file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-accesslog-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'access.log');
  const p = await startProxy({ proxy: { service: 'web', accessLog: file } });
  for (let i = 0; i < 100 && openFds(file) === 0; i++) await sleep(20);
  assert.equal(openFds(file), 1, 'the proxy opened its access log');
  p.proxy.destroy();
  for (let i = 0; i < 150 && openFds(file) > 0; i++) await sleep(20);
  assert.equal(openFds(file), 0, 'destroy() released the file');
});
