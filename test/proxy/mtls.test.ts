/**
 * Mutual TLS between sidecars, end to end with real TLS peers: two sidecars (HTTP/1, HTTP/2,
 * gRPC, WebSocket, opaque TCP through TLS), openssl s_client and curl as independent clients
 * of the inbound listener (modes, foreign CA, expired and missing client certificates,
 * TLS 1.2), a server with the wrong identity refused by the client side, and certificate
 * plus root rotation under load without a failed request.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { request } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { StaticIdentitySource } from '../../src/identity/static-identity-source.ts';
import { curl } from '../support/clients.ts';
import { echoClient, startEchoServer } from '../support/grpc.ts';
import { startHttpServer, startProxy, type RunningProxy } from '../support/mesh.ts';
import { PemDir, TestCa, type IssuedCert } from '../support/pki.ts';

let ca: TestCa;
let foreign: TestCa;
let pem: PemDir;
const closers: (() => unknown)[] = [];

before(async () => {
  [ca, foreign] = await Promise.all([
    TestCa.create('hexmesh.test', 'mesh'),
    TestCa.create('hexmesh.test', 'other'),
  ]);
  pem = new PemDir();
});
after(async () => {
  for (const c of closers.reverse()) await c();
  pem.close();
});

function identity(cert: IssuedCert, bundle = ca.rootPem): StaticIdentitySource {
  return new StaticIdentitySource({ ...cert, trustBundlePem: bundle });
}

const peerAuth = (mode: 'STRICT' | 'PERMISSIVE', service?: string) => ({
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'PeerAuthentication',
  metadata: { name: service ?? 'default', namespace: 'default' },
  spec: { mode, ...(service ? { targetRef: { name: service } } : {}) },
});

/** A sidecar for `service` in front of `app`, with a certificate for sa/<sa> (default: the service). */
async function serverSidecar(o: {
  service: string;
  app: { port: number; protocol?: string };
  resources?: unknown[];
  cert?: IssuedCert;
  proxy?: Record<string, unknown>;
}): Promise<{ p: RunningProxy; id: StaticIdentitySource }> {
  const p = await startProxy({
    proxy: { service: o.service, app: { host: '127.0.0.1', ...o.app }, ...o.proxy },
    resources: o.resources ?? [],
  });
  const id = identity(o.cert ?? (await ca.issue(ca.id('default', o.service))));
  p.proxy.setIdentity(id);
  closers.push(() => p.close());
  return { p, id };
}

/** A client sidecar (service `client`, or `sa`) calling `service` at `port`. */
async function clientSidecar(o: {
  service: string;
  port: number;
  sa?: string;
  protocol?: string;
  endpointIdentity?: string;
  proxy?: Record<string, unknown>;
  resources?: unknown[];
  cert?: IssuedCert;
}): Promise<{ p: RunningProxy; id: StaticIdentitySource }> {
  const p = await startProxy({
    proxy: { service: o.sa ?? 'client', ...o.proxy },
    services: [
      {
        name: o.service,
        ports: [{ port: 80, protocol: o.protocol ?? 'http' }],
        endpoints: [
          {
            address: '127.0.0.1',
            port: o.port,
            ...(o.endpointIdentity ? { identity: o.endpointIdentity } : {}),
          },
        ],
      },
    ],
    resources: o.resources ?? [],
  });
  const id = identity(o.cert ?? (await ca.issue(ca.id('default', o.sa ?? 'client'))));
  p.proxy.setIdentity(id);
  closers.push(() => p.close());
  return { p, id };
}

async function metric(p: RunningProxy, prefix: string): Promise<number> {
  const text = await (await request(`${p.adminUrl}/metrics`)).body.text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(prefix)) sum += Number(line.split(' ').pop());
  return sum;
}

function openssl(args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', args, { timeout: 15_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) || 1 : 0, stdout, stderr }),
    );
    // Keep stdin open a moment so the response can arrive before s_client sees EOF.
    child.stdin!.write(input);
    setTimeout(() => child.stdin!.end(), 1500);
  });
}

// ----------------------------------------------------------------------------- protocols

test('HTTP/1, HTTP/2 and WebSocket through mTLS; the inbound authorizes by the client SPIFFE ID', async () => {
  const app = await startHttpServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url, client: req.headers['x-hexmesh-client'] ?? null }));
  });
  closers.push(() => app.close());
  const wss = new WebSocketServer({ server: app.server });
  wss.on('connection', (ws) => ws.on('message', (d, binary) => ws.send(d, { binary })));
  closers.push(() => wss.close());

  // Only sa/client may call web (ALLOW on principals): a missing peer identity would be 403.
  const allowClient = {
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'only-client', namespace: 'default' },
    spec: {
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: [ca.id('default', 'client')] } }] }],
    },
  };
  const server = await serverSidecar({
    service: 'web',
    app: { port: app.port },
    resources: [allowClient, peerAuth('STRICT')],
  });
  const client = await clientSidecar({ service: 'web', port: server.p.inboundPort });
  const intruder = await clientSidecar({ service: 'web', port: server.p.inboundPort, sa: 'intruder' });

  // HTTP/1.1
  const r1 = await request(`${client.p.outboundUrl}/h1`, { headers: { host: 'web' } });
  assert.equal(r1.statusCode, 200);
  assert.equal(((await r1.body.json()) as { path: string }).path, '/h1');

  // HTTP/2 from the app (h2c) → h2 over TLS (ALPN h2) between the sidecars.
  const r2 = await curl(['--http2-prior-knowledge', '-H', 'host: web', `${client.p.outboundUrl}/h2`]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(JSON.parse(r2.stdout.toString()).path, '/h2');

  // Another workload of the same mesh, authenticated but not allowed.
  const denied = await request(`${intruder.p.outboundUrl}/h1`, { headers: { host: 'web' } });
  assert.equal(denied.statusCode, 403);
  assert.equal(denied.headers['x-hexmesh-error'], 'denied');
  await denied.body.dump();

  // WebSocket (HTTP/1.1 Upgrade spliced over the TLS hop).
  const ws = new WebSocket(`ws://127.0.0.1:${client.p.addr.outbound.port}/ws`, { headers: { host: 'web' } });
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  const echoed = new Promise<string>((res) => ws.once('message', (d) => res(d.toString())));
  ws.send('over tls');
  assert.equal(await echoed, 'over tls');
  ws.close();

  assert.ok((await metric(server.p, 'hexmesh_requests_total{direction="inbound"')) >= 2);
  assert.equal(
    await metric(
      server.p,
      'hexmesh_requests_total{direction="inbound",src_service="client",dst_service="web",route="default",status_code="200",grpc_status="",tls="false"',
    ),
    0,
  );
  assert.ok(
    (await metric(
      server.p,
      'hexmesh_requests_total{direction="inbound",src_service="client",dst_service="web",route="default",status_code="200",grpc_status="",tls="true"',
    )) >= 2,
  );
  // The client side reports the hop as TLS too (the verified server identity).
  assert.ok(
    (await metric(
      client.p,
      'hexmesh_requests_total{direction="outbound",src_service="client",dst_service="web",route="default",status_code="200",grpc_status="",tls="true"',
    )) >= 2,
  );
});

test('gRPC through mTLS', async () => {
  const echo = await startEchoServer();
  closers.push(() => echo.close());
  const server = await serverSidecar({
    service: 'echo',
    app: { port: echo.port, protocol: 'grpc' },
    resources: [peerAuth('STRICT')],
  });
  const client = await clientSidecar({ service: 'echo', port: server.p.inboundPort, protocol: 'grpc' });
  const c = echoClient(client.p.addr.outbound.port, 'echo');
  closers.push(() => c.close());
  const reply = await new Promise<{ message: string }>((res, rej) =>
    (c.Unary as (r: unknown, cb: (e: Error | null, r: { message: string }) => void) => void)(
      { message: 'hi' },
      (e, r) => (e ? rej(e) : res(r)),
    ),
  );
  assert.equal(reply.message, 'hi');
  assert.ok(
    (await metric(
      server.p,
      'hexmesh_requests_total{direction="inbound",src_service="client",dst_service="echo",route="default",status_code="200",grpc_status="0",tls="true"',
    )) >= 1,
  );
});

test('opaque TCP through the mTLS tunnel (STRICT inbound)', async () => {
  const tcpApp = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d) => s.write(Buffer.concat([Buffer.from('echo:'), d])));
    s.on('end', () => s.end());
    s.on('error', () => {});
  });
  await new Promise<void>((r) => tcpApp.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => tcpApp.close(r)));
  const server = await serverSidecar({
    service: 'db',
    app: { port: (tcpApp.address() as net.AddressInfo).port, protocol: 'tcp' },
    resources: [peerAuth('STRICT')],
  });
  const client = await clientSidecar({
    service: 'db',
    port: server.p.inboundPort,
    protocol: 'tcp',
    proxy: { upstreams: [{ service: 'db', localPort: 0 }] },
  });
  const sock = net.connect(client.p.addr.upstreams.db.port, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (d) => chunks.push(d));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write('ping');
  const deadline = Date.now() + 5000;
  while (Buffer.concat(chunks).toString() !== 'echo:ping' && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  sock.destroy();
  assert.equal(Buffer.concat(chunks).toString(), 'echo:ping');
  assert.equal(await metric(server.p, 'hexmesh_tls_plaintext_refused_total'), 0);
});

// ------------------------------------------------------------------ independent clients

test('openssl s_client and curl against the inbound: modes, CAs, expiry, TLS 1.2', async () => {
  const app = await startHttpServer((_req, res) => res.end('app'));
  closers.push(() => app.close());
  const server = await serverSidecar({ service: 'web', app: { port: app.port } });
  const port = server.p.inboundPort;
  const url = `https://127.0.0.1:${port}/`;
  const good = pem.identityFiles('good', await ca.issue(ca.id('default', 'curl')), ca.rootPem);
  const alien = pem.identityFiles('alien', await foreign.issue(foreign.id('default', 'curl')), ca.rootPem);
  const day = 86_400_000;
  const expired = pem.identityFiles(
    'expired',
    await ca.issue(ca.id('default', 'curl'), {
      notBefore: new Date(Date.now() - 3 * day),
      notAfter: new Date(Date.now() - day),
    }),
    ca.rootPem,
  );
  const tlsCurl = (files: { certFile: string; keyFile: string }, extra: string[] = []) =>
    curl(['-k', '--cert', files.certFile, '--key', files.keyFile, '-H', 'host: web', ...extra, url], 10_000);

  // PERMISSIVE (the default): plaintext and mTLS both accepted.
  const plainOk = await curl(['-H', 'host: web', `http://127.0.0.1:${port}/`], 10_000);
  assert.equal(plainOk.code, 0, plainOk.stderr);
  assert.equal(plainOk.stdout.toString(), 'app');
  const tlsOk = await tlsCurl(good);
  assert.equal(tlsOk.code, 0, tlsOk.stderr);
  assert.equal(tlsOk.stdout.toString(), 'app');

  // STRICT by a namespace PeerAuthentication: plaintext closed and counted, mTLS still fine.
  server.p.proxy.apply({ ...server.p.proxy.config, resources: [peerAuth('STRICT') as never] });
  const plainRefused = await curl(['-H', 'host: web', `http://127.0.0.1:${port}/`], 10_000);
  assert.notEqual(plainRefused.code, 0);
  assert.equal(plainRefused.stdout.length, 0);
  assert.ok((await metric(server.p, 'hexmesh_tls_plaintext_refused_total')) >= 1);
  assert.equal((await tlsCurl(good)).stdout.toString(), 'app');

  // A service-level PERMISSIVE overrides the namespace's STRICT.
  server.p.proxy.apply({
    ...server.p.proxy.config,
    resources: [peerAuth('STRICT'), peerAuth('PERMISSIVE', 'web')] as never,
  });
  assert.equal(
    (await curl(['-H', 'host: web', `http://127.0.0.1:${port}/`], 10_000)).stdout.toString(),
    'app',
  );
  server.p.proxy.apply({ ...server.p.proxy.config, resources: [peerAuth('STRICT', 'web') as never] });

  const failuresBefore = await metric(server.p, 'hexmesh_tls_handshake_failures_total');
  // A client certificate from another CA, an expired one, none at all, TLS 1.2: refused.
  for (const [what, r] of [
    ['foreign CA', await tlsCurl(alien)],
    ['expired', await tlsCurl(expired)],
    ['no client cert', await curl(['-k', '-H', 'host: web', url], 10_000)],
    ['TLS 1.2', await tlsCurl(good, ['--tls-max', '1.2'])],
  ] as const) {
    assert.notEqual(r.code, 0, `${what}: curl should fail`);
    assert.equal(r.stdout.toString(), '', `${what}: no response expected`);
  }
  assert.ok((await metric(server.p, 'hexmesh_tls_handshake_failures_total')) >= failuresBefore + 3);

  // openssl s_client: TLS 1.3 with a good certificate speaks HTTP; the refusals as above.
  const req = 'GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n';
  const sc = (extra: string[]) =>
    openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-quiet', '-no_ign_eof', ...extra], req);
  // -cert_chain: s_client sends only the leaf of -cert; the intermediate must go too.
  const ok = await sc([
    '-tls1_3',
    '-cert',
    good.certFile,
    '-cert_chain',
    good.certFile,
    '-key',
    good.keyFile,
  ]);
  assert.match(ok.stdout, /^HTTP\/1\.1 200/m, ok.stderr);
  assert.match(ok.stdout, /app$/);
  for (const [what, args] of [
    ['foreign CA', ['-cert', alien.certFile, '-cert_chain', alien.certFile, '-key', alien.keyFile]],
    ['expired', ['-cert', expired.certFile, '-cert_chain', expired.certFile, '-key', expired.keyFile]],
    ['no client cert', []],
    ['TLS 1.2', ['-tls1_2', '-cert', good.certFile, '-cert_chain', good.certFile, '-key', good.keyFile]],
  ] as const) {
    const r = await sc([...args]);
    assert.doesNotMatch(r.stdout, /HTTP\/1\.1/, `${what}: s_client must get no response`);
    assert.match(r.stderr, /alert|error/i, `${what}: ${r.stderr}`);
  }
});

// --------------------------------------------------------------- server identity check

test('the client side refuses a server presenting the wrong identity', async () => {
  const app = await startHttpServer((_req, res) => res.end('app'));
  closers.push(() => app.close());
  // A sidecar answering at "web"'s address with a valid mesh certificate for another workload.
  const impostor = await serverSidecar({
    service: 'web',
    app: { port: app.port },
    cert: await ca.issue(ca.id('default', 'billing')),
  });
  // Discovery's identity (explicit) and the fallback (sa = service name) both catch it.
  for (const endpointIdentity of [ca.id('default', 'web'), undefined]) {
    const client = await clientSidecar({ service: 'web', port: impostor.p.inboundPort, endpointIdentity });
    const r = await request(`${client.p.outboundUrl}/`, { headers: { host: 'web' } });
    const body = await r.body.text();
    assert.equal(r.statusCode, 502);
    assert.equal(r.headers['x-hexmesh-error'], 'tls-identity-mismatch');
    assert.match(
      body,
      /presented spiffe:\/\/hexmesh\.test\/ns\/default\/sa\/billing, expected spiffe:\/\/hexmesh\.test\/ns\/default\/sa\/web/,
    );
  }
  // When discovery names the identity it actually has, the same endpoint is fine.
  const ok = await clientSidecar({
    service: 'web',
    port: impostor.p.inboundPort,
    endpointIdentity: ca.id('default', 'billing'),
  });
  const r = await request(`${ok.p.outboundUrl}/`, { headers: { host: 'web' } });
  assert.equal(await r.body.text(), 'app');
});

// ------------------------------------------------------------------ rotation under load

test('workload renewals and a root rotation under load lose no request', async () => {
  const app = await startHttpServer((_req, res) => res.end('ok'));
  closers.push(() => app.close());
  const caB = await TestCa.create('hexmesh.test', 'new-root');
  const server = await serverSidecar({
    service: 'web',
    app: { port: app.port },
    resources: [peerAuth('STRICT')],
  });
  // Short upstream keep-alive: connections keep closing and re-handshaking during the load.
  const idle = {
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: 'short-idle', namespace: 'default' },
    spec: { targetRef: { kind: 'Service', name: 'web' }, timeouts: { idle: '100ms' } },
  };
  const client = await clientSidecar({ service: 'web', port: server.p.inboundPort, resources: [idle] });

  let ok = 0;
  const failures: string[] = [];
  let stop = false;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  closers.push(() => agent.destroy());
  const get = () =>
    new Promise<void>((resolve) => {
      const req = http.get(
        { host: '127.0.0.1', port: client.p.addr.outbound.port, path: '/', headers: { host: 'web' }, agent },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            if (res.statusCode === 200 && body === 'ok') ok++;
            else
              failures.push(
                `${res.statusCode} ${res.headers['x-hexmesh-error'] ?? ''} ${body.slice(0, 200)}`,
              );
            resolve();
          });
        },
      );
      req.on('error', (e) => {
        failures.push(e.message);
        resolve();
      });
    });
  const started = Date.now();
  const worker = async (i: number) => {
    // Bounded in count and time.
    for (let n = 0; n < 5000 && !stop && Date.now() - started < 30_000; n++) {
      await get();
      await new Promise((r) => setTimeout(r, (n * 37 + i * 53) % 160));
    }
  };
  const workers = Promise.all(Array.from({ length: 6 }, (_, i) => worker(i)));
  const settle = async () => {
    const before = ok;
    const t0 = Date.now();
    while (ok < before + 40 && Date.now() - t0 < 8000) await new Promise((r) => setTimeout(r, 50));
  };
  const renew = async (from: TestCa) => {
    server.id.update(await from.issue(ca.id('default', 'web')));
    client.id.update(await from.issue(ca.id('default', 'client')));
  };

  await settle();
  await renew(ca); // renewal 1 (same root)
  await settle();
  const both = ca.rootPem + caB.rootPem;
  server.id.update({ trustBundlePem: both }); // old + new roots trusted
  client.id.update({ trustBundlePem: both });
  await settle();
  await renew(caB); // renewal 2, from the new root
  await settle();
  server.id.update({ trustBundlePem: caB.rootPem }); // old root removed
  client.id.update({ trustBundlePem: caB.rootPem });
  await settle();
  await settle();
  stop = true;
  await workers;

  assert.deepEqual(failures, []);
  assert.ok(ok >= 200, `only ${ok} requests completed`);
  assert.equal(await metric(server.p, 'hexmesh_tls_handshake_failures_total'), 0);
  assert.equal(await metric(server.p, 'hexmesh_tls_plaintext_refused_total'), 0);

  // The rotation really happened: a workload still on the old root is now refused.
  const stale = await clientSidecar({
    service: 'web',
    port: server.p.inboundPort,
    sa: 'stale',
    cert: await ca.issue(ca.id('default', 'stale')),
  });
  const r = await request(`${stale.p.outboundUrl}/`, { headers: { host: 'web' } });
  await r.body.dump();
  assert.equal(r.statusCode, 502);
  assert.equal(r.headers['x-hexmesh-error'], 'tls');
});
