/**
 * Issue 9 (review): one client cannot take every connection (and file descriptor) of a
 * sidecar. `proxy.maxConnectionsPerClient` bounds the connections open at once from one
 * source address, and on mTLS from one peer identity; `proxy.maxDownstreamConnections` bounds
 * them all. A connection over a limit is closed at accept, counted
 * (`hexmesh_connections_refused_total`) and logged once; other clients are still served.
 * Real `hexmesh proxy` processes; the flood comes from other loopback addresses (127.0.0.x).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { CliProxy } from '../support/cli.ts';
import { PemDir, TestCa } from '../support/pki.ts';

const PER_CLIENT = 20;
const TOTAL = 45;

let dir: string;
let pem: PemDir;
let app: http.Server;
let server: CliProxy;
let peerA: tls.ConnectionOptions;
let peerB: tls.ConnectionOptions;
const held: net.Socket[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hexmesh-connlimit-'));
  pem = new PemDir();
  app = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  const ca = await TestCa.create('hexmesh.test', 'connlimit');
  const serverId = pem.identityFiles('server', await ca.issue(ca.id('default', 'greeter')), ca.rootPem);
  const peer = async (name: string): Promise<tls.ConnectionOptions> => {
    const c = await ca.issue(ca.id('default', name));
    return { cert: c.certChainPem, key: c.keyPem, ca: ca.rootPem, checkServerIdentity: () => undefined };
  };
  [peerA, peerB] = await Promise.all([peer('flooder'), peer('web')]);
  const file = join(dir, 'server.json');
  const any = { address: '127.0.0.1', port: 0 };
  writeFileSync(
    file,
    JSON.stringify({
      proxy: {
        service: 'greeter',
        outbound: any,
        inbound: any,
        admin: any,
        drainTimeout: '2s',
        app: { port: (app.address() as AddressInfo).port },
        tls: { ...serverId, mode: 'PERMISSIVE' },
        maxConnectionsPerClient: PER_CLIENT,
        maxDownstreamConnections: TOTAL,
      },
    }),
  );
  server = await CliProxy.start(file, 30_000);
});

after(async () => {
  for (const s of held) s.destroy();
  await server?.kill();
  app?.closeAllConnections();
  await new Promise((r) => app?.close(r));
  pem?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * One keep-alive connection from `from` that sends a GET: true if it was answered 200 (and it
 * stays open, held), false if the proxy closed it without a byte.
 */
function connect(port: number, from: string, secure?: tls.ConnectionOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const tcp = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const s = secure ? tls.connect({ ...secure, socket: tcp }) : tcp;
    if (secure) tcp.on('error', () => {});
    let got = '';
    let done = false;
    const finish = (served: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (served) held.push(s);
      else s.destroy();
      resolve(served);
    };
    const timer = setTimeout(() => finish(false), 20_000);
    s.on('error', () => finish(false));
    s.on('close', () => finish(false));
    s.once(secure ? 'secureConnect' : 'connect', () =>
      s.write('GET /limit HTTP/1.1\r\nHost: greeter\r\nConnection: keep-alive\r\n\r\n'),
    );
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (/^HTTP\/1\.1 200[\s\S]*\r\n\r\nok$/.test(got)) finish(true);
    });
  });
}

async function flood(
  port: number,
  from: string[],
  n: number,
  secure?: tls.ConnectionOptions,
): Promise<number> {
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => connect(port, from[i % from.length], secure)),
  );
  return results.filter(Boolean).length;
}

async function refusedTotal(reason: string): Promise<number> {
  const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
  const m = new RegExp(
    `^hexmesh_connections_refused_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`,
    'm',
  ).exec(text);
  return m ? Number(m[1]) : 0;
}

function release(): Promise<void> {
  const closing = held.splice(0).map((s) => new Promise((r) => (s.once('close', r), s.destroy())));
  return Promise.all(closing).then(() => undefined);
}

/** The proxy saw the held connections close: a connection from `from` is served again. */
async function servedAgain(port: number, from: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await connect(port, from))) {
    if (Date.now() > deadline)
      assert.fail(`a connection from ${from} is still refused after the flood closed`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await release();
}

test('a flood of connections from one address is refused past proxy.maxConnectionsPerClient; another client is served', async () => {
  const served = await flood(server.inboundPort, ['127.0.0.2'], 60);
  assert.equal(served, PER_CLIENT, `connections held from 127.0.0.2 (cap ${PER_CLIENT})`);
  assert.equal(await refusedTotal('client'), 60 - PER_CLIENT);
  // The cap is per client: another address, plaintext and over mTLS, and the outbound
  // listener (same client, same count) behave accordingly while the flood holds its share.
  assert.equal(await connect(server.inboundPort, '127.0.0.1'), true, 'another client refused');
  assert.equal(await connect(server.inboundPort, '127.0.0.3', peerB), true, 'an mTLS client refused');
  assert.equal(await connect(server.outboundPort, '127.0.0.2'), false, 'the flooder on another listener');
  // Logged once, naming the setting, however many were refused.
  const lines = server.stderr.split('\n').filter((l) => l.includes('connection refused'));
  assert.equal(lines.length, 1, server.stderr);
  assert.match(
    lines[0],
    /inbound listener: connection refused: 20 connections open from 127\.0\.0\.2 \(proxy\.maxConnectionsPerClient\)/,
  );
  await release();
  await servedAgain(server.inboundPort, '127.0.0.2');
});

test('on mTLS one peer identity is one client, from however many addresses', async () => {
  const before = await refusedTotal('identity');
  // 40 connections with one certificate from 4 addresses (10 each, under the address cap).
  const served = await flood(
    server.inboundPort,
    ['127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'],
    40,
    peerA,
  );
  assert.equal(served, PER_CLIENT, `connections held by the flooder's identity (cap ${PER_CLIENT})`);
  assert.equal((await refusedTotal('identity')) - before, 40 - PER_CLIENT);
  // Another identity from one of the same addresses is served.
  assert.equal(await connect(server.inboundPort, '127.0.0.4', peerB), true, 'another identity refused');
  await release();
  await servedAgain(server.inboundPort, '127.0.0.4');
});

test('proxy.maxDownstreamConnections bounds all clients together', async () => {
  const before = await refusedTotal('total');
  // Three clients at the per-client cap reach the total (45): the 46th is refused.
  let served = 0;
  for (const from of ['127.0.0.8', '127.0.0.9', '127.0.0.10'])
    served += await flood(server.inboundPort, [from], PER_CLIENT);
  assert.equal(served, TOTAL);
  assert.equal(
    await connect(server.inboundPort, '127.0.0.11'),
    false,
    'a connection past the total was served',
  );
  assert.equal((await refusedTotal('total')) - before, 1 + 3 * PER_CLIENT - TOTAL);
  await release();
  await servedAgain(server.inboundPort, '127.0.0.11');
});
