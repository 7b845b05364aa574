import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { ConnectionLimiter } from './connection-limit.ts';

// Real sockets: a server on port 0 whose connections the limiter admits or closes.
let server: net.Server;
let admit: (s: net.Socket) => boolean = () => true;
const clients: net.Socket[] = [];

before(async () => {
  server = net.createServer((s) => {
    s.on('error', () => {});
    if (admit(s)) s.write('y');
    else s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
});
after(async () => {
  for (const c of clients) c.destroy();
  await new Promise((r) => server.close(r));
});

/** Connect from `from`: true once the server says it admitted it, false once it is closed. */
function open(from: string): Promise<boolean> {
  const port = (server.address() as net.AddressInfo).port;
  const c = net.connect({ host: '127.0.0.1', port, localAddress: from });
  c.on('error', () => {});
  clients.push(c);
  return new Promise((resolve) => {
    c.once('data', () => resolve(true));
    c.once('close', () => resolve(false));
  });
}

test('ConnectionLimiter: per client, total, released on close; one log line per reason per minute with the count since', async () => {
  const lines: string[] = [];
  let now = 0;
  const registry = new Registry();
  const limiter = new ConnectionLimiter(
    { maxConnections: 5, maxPerClient: 2 },
    { registry, log: (l) => lines.push(l), now: () => now },
  );
  admit = (s) => limiter.admit(s, 'inbound');
  assert.deepEqual(
    [await open('127.0.0.2'), await open('127.0.0.2'), await open('127.0.0.2')],
    [true, true, false],
  );
  assert.equal(await open('127.0.0.2'), false);
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(
    lines[0],
    /^inbound listener: connection refused: 2 connections open from 127\.0\.0\.2 \(proxy\.maxConnectionsPerClient\)$/,
  );
  now += 60_001;
  assert.equal(await open('127.0.0.2'), false);
  assert.match(lines[1], /\(1 more refused since the last report\)$/);
  // The total: 3 more clients fill it.
  assert.deepEqual(
    [await open('127.0.0.3'), await open('127.0.0.3'), await open('127.0.0.4')],
    [true, true, true],
  );
  assert.equal(limiter.open, 5);
  assert.equal(await open('127.0.0.5'), false);
  assert.match(lines[2], /5 connections open on all listeners \(proxy\.maxDownstreamConnections\)/);
  const metrics = await registry.metrics();
  assert.match(metrics, /hexmesh_connections_refused_total\{listener="inbound",reason="client"\} 3/);
  assert.match(metrics, /hexmesh_connections_refused_total\{listener="inbound",reason="total"\} 1/);
  // Closing gives the room back.
  for (const c of clients.splice(0)) c.destroy();
  const deadline = Date.now() + 10_000;
  while (limiter.open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(limiter.open, 0);
  assert.equal(await open('127.0.0.2'), true);
});
