/**
 * Issue 9, "authorization must not be skippable", end to end with real sidecars and real
 * sockets: every spelling of a host matches a `hosts` rule; a tunnel preface never carries
 * bytes past the HTTP layers to an HTTP app; HTTP after a leading CRLF is parsed and
 * authorized; L4 rules (principals, namespaces, ipBlocks, ports) apply to opaque TCP.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import test from 'node:test';
import tls from 'node:tls';
import { WebSocketServer } from 'ws';
import { StaticIdentitySource } from '../../src/identity/static-identity-source.ts';
import { tunnelHeader } from '../../src/proxy/listen/detect.ts';
import { startHttpServer, startProxy, type RunningProxy } from '../support/mesh.ts';
import { TestCa } from '../support/pki.ts';
import { parseResponse, rawExchange } from '../support/raw.ts';

let caPromise: Promise<TestCa> | undefined;
/** One mesh CA for the file (minting keys is slow on a loaded machine). */
function meshCa(): Promise<TestCa> {
  return (caPromise ??= TestCa.create('hexmesh.test', 'mesh'));
}

function authz(name: string, spec: Record<string, unknown>, namespace = 'default') {
  return {
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace },
    spec,
  };
}

/** An HTTP app that records what reaches it; `/admin` is the secret. */
async function httpApp(t: test.TestContext) {
  const seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];
  const app = await startHttpServer((req, res) => {
    seen.push({ url: req.url!, headers: req.headers });
    res.end(req.url!.startsWith('/admin') ? 'ADMIN SECRET' : `ok ${req.url}`);
  });
  t.after(() => app.close());
  return { ...app, seen };
}

async function sidecar(t: test.TestContext, doc: Parameters<typeof startProxy>[0]): Promise<RunningProxy> {
  const p = await startProxy(doc);
  t.after(() => p.close());
  return p;
}

function request(host: string, path = '/'): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
}

// ------------------------------------------------------------------- host normalisation

test('issue 9: a DENY on hosts [orders] denies every spelling of orders, sent straight to the inbound', async (t) => {
  const app = await httpApp(t);
  const server = await sidecar(t, {
    proxy: { service: 'orders', app: { port: app.port } },
    resources: [
      authz('deny-orders', { action: 'DENY', rules: [{ to: [{ operation: { hosts: ['orders'] } }] }] }),
    ],
  });
  for (const host of [
    'orders',
    'orders.',
    'Orders.DEFAULT.',
    'orders:80',
    'orders.default.svc.cluster.local.',
    'ORDERS.default.svc:8080',
  ]) {
    const r = await rawExchange(server.inboundPort, request(host), { timeoutMs: 5000 });
    const res = parseResponse(r.text);
    assert.equal(res?.status, 403, `${host}: ${r.text}`);
    assert.equal(res?.headers['x-hexmesh-error'], 'denied');
  }
  assert.equal(app.seen.length, 0, JSON.stringify(app.seen));
  // Another service's name is not this rule's.
  const other = parseResponse((await rawExchange(server.inboundPort, request('payments'))).text);
  assert.equal(other?.status, 200);
});

test('issue 9: routing and authorization agree: what the client sidecar routes to orders is denied as orders', async (t) => {
  const app = await httpApp(t);
  const server = await sidecar(t, {
    proxy: { service: 'orders', app: { port: app.port } },
    resources: [
      authz('deny-orders', { action: 'DENY', rules: [{ to: [{ operation: { hosts: ['orders'] } }] }] }),
    ],
  });
  const client = await sidecar(t, {
    proxy: { service: 'web' },
    services: [{ name: 'orders', endpoints: [{ address: '127.0.0.1', port: server.inboundPort }] }],
  });
  for (const host of ['orders.', 'Orders.Default.', 'orders:80', 'orders.default.svc.cluster.local.']) {
    const res = parseResponse(
      (await rawExchange(client.addr.outbound.port, request(host), { timeoutMs: 5000 })).text,
    );
    assert.equal(res?.status, 403, host);
    assert.equal(res?.headers['x-hexmesh-error'], 'denied', host);
  }
  assert.equal(app.seen.length, 0);
});

test('issue 9: a WebSocket upgrade is routed with the same reading of Host (case, trailing dot, namespace)', async (t) => {
  const app = await httpApp(t);
  const wss = new WebSocketServer({ server: app.server });
  t.after(() => wss.close());
  const server = await sidecar(t, { proxy: { service: 'orders', app: { port: app.port } } });
  const client = await sidecar(t, {
    proxy: { service: 'web' },
    services: [{ name: 'orders', endpoints: [{ address: '127.0.0.1', port: server.inboundPort }] }],
  });
  const upgrade = (host: string) =>
    rawExchange(
      client.addr.outbound.port,
      `GET /ws HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      { timeoutMs: 5000, until: (d) => d.includes('\r\n\r\n') },
    );
  for (const host of ['orders', 'Orders.Default.', 'orders.default.svc.cluster.local:80'])
    assert.match((await upgrade(host)).text, /^HTTP\/1\.1 101 /, host);
  // Another namespace's orders is another service (unknown here), not this one.
  const other = parseResponse((await upgrade('orders.other')).text);
  assert.equal(other?.status, 404);
  assert.equal(other?.headers['x-hexmesh-error'], 'unknown-service');
});

// ----------------------------------------------------------------------------- tunnels

const DENY_ADMIN = authz('deny-admin', {
  action: 'DENY',
  rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }],
});

/** Write `bytes` on a connected socket; collect what comes back until it closes (or `ms`). */
function exchange(sock: net.Socket | tls.TLSSocket, bytes: Buffer, ms = 5000): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts).toString('latin1'));
    };
    const timer = setTimeout(() => {
      sock.destroy();
    }, ms);
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('error', () => {});
    sock.once('close', done);
    sock.write(bytes);
  });
}

test('issue 9: a tunnel preface to an HTTP app is refused (plaintext, PERMISSIVE): GET /admin never reaches it', async (t) => {
  const app = await httpApp(t);
  const server = await sidecar(t, {
    proxy: { service: 'orders', app: { port: app.port } },
    resources: [DENY_ADMIN],
  });
  const sock = net.connect(server.inboundPort, '127.0.0.1');
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const got = await exchange(
    sock,
    Buffer.concat([tunnelHeader(80), Buffer.from('GET /admin HTTP/1.1\r\nHost: orders\r\n\r\n')]),
  );
  assert.equal(got, '', 'the tunnel is closed without an answer');
  assert.equal(app.seen.length, 0, JSON.stringify(app.seen));
  // The same request as HTTP is denied by the policy, and a harmless one passes.
  const denied = parseResponse((await rawExchange(server.inboundPort, request('orders', '/admin'))).text);
  assert.equal(denied?.status, 403);
  const ok = parseResponse((await rawExchange(server.inboundPort, request('orders', '/x'))).text);
  assert.equal(ok?.status, 200);
});

test('issue 9: a peer with a mesh certificate cannot tunnel GET /admin past the policy (mTLS, ALPN hexmesh-tcp)', async (t) => {
  const ca = await meshCa();
  const app = await httpApp(t);
  const server = await sidecar(t, {
    proxy: { service: 'orders', app: { port: app.port } },
    resources: [DENY_ADMIN],
  });
  const serverCert = await ca.issue(ca.id('default', 'orders'));
  server.proxy.setIdentity(new StaticIdentitySource({ ...serverCert, trustBundlePem: ca.rootPem }));
  const peer = await ca.issue(ca.id('default', 'web'));
  const connect = (alpn: string) =>
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port: server.inboundPort,
        cert: peer.certChainPem,
        key: peer.keyPem,
        ca: ca.rootPem,
        ALPNProtocols: [alpn],
        checkServerIdentity: () => undefined,
      });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });
  const tunnelled = await exchange(
    await connect('hexmesh-tcp'),
    Buffer.concat([tunnelHeader(80), Buffer.from('GET /admin HTTP/1.1\r\nHost: orders\r\n\r\n')]),
  );
  assert.equal(tunnelled, '');
  assert.equal(app.seen.length, 0, JSON.stringify(app.seen));
  // The same peer over HTTP: authorized by the policy (403), with its identity known.
  const http1 = await exchange(
    await connect('http/1.1'),
    Buffer.from('GET /admin HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n'),
  );
  assert.equal(parseResponse(http1)?.status, 403, http1);
  assert.equal(app.seen.length, 0);
});

test('issue 9: a request after a leading CRLF on a per-upstream port is HTTP, routed and authorized', async (t) => {
  const app = await httpApp(t);
  const server = await sidecar(t, {
    proxy: { service: 'orders', app: { port: app.port } },
    resources: [DENY_ADMIN],
  });
  const client = await sidecar(t, {
    proxy: { service: 'web', upstreams: [{ service: 'orders', localPort: 0 }] },
    services: [{ name: 'orders', endpoints: [{ address: '127.0.0.1', port: server.inboundPort }] }],
  });
  const local = client.addr.upstreams.orders.port;
  for (const lead of ['\r\n', '\r\n\r\n', '\n']) {
    const denied = await rawExchange(local, `${lead}${request('orders', '/admin')}`, { timeoutMs: 5000 });
    const res = parseResponse(denied.text);
    assert.equal(res?.status, 403, `${JSON.stringify(lead)}: ${denied.text}`);
    assert.equal(res?.headers['x-hexmesh-error'], 'denied');
    const ok = parseResponse(
      (await rawExchange(local, `${lead}${request('orders', '/x')}`, { timeoutMs: 5000 })).text,
    );
    assert.equal(ok?.status, 200, JSON.stringify(lead));
    assert.equal(ok?.body, 'ok /x');
  }
  // Straight at the inbound listener too.
  const inbound = parseResponse(
    (await rawExchange(server.inboundPort, `\r\n${request('orders', '/admin')}`)).text,
  );
  assert.equal(inbound?.status, 403);
  assert.ok(
    app.seen.every((r) => !r.url.startsWith('/admin')),
    JSON.stringify(app.seen),
  );
});

// ------------------------------------------------------------------ L4 authorization

/** A TCP echo app; counts the connections that reach it. */
async function tcpApp(t: test.TestContext) {
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.on('error', () => {});
    s.on('data', (d) => s.write(Buffer.concat([Buffer.from('echo:'), d])));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
  };
}

/** Send `ping` through `port`; the echo, or '' if the connection was closed first. */
async function ping(port: number): Promise<string> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => {
    sock.once('connect', () => r());
    sock.once('error', j);
  });
  const parts: Buffer[] = [];
  sock.on('data', (d: Buffer) => parts.push(d));
  sock.on('error', () => {});
  sock.write('ping');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !sock.destroyed && Buffer.concat(parts).toString() !== 'echo:ping')
    await new Promise((r) => setTimeout(r, 20));
  sock.destroy();
  return Buffer.concat(parts).toString();
}

/** A TCP app behind a sidecar with `resources`; a client sidecar reaching it through a tunnel. */
async function tcpMesh(t: test.TestContext, resources: unknown[], identities = false) {
  const app = await tcpApp(t);
  const server = await sidecar(t, {
    proxy: { service: 'db', app: { port: app.port, protocol: 'tcp' } },
    resources,
  });
  const client = (sa: string) =>
    sidecar(t, {
      proxy: { service: sa, upstreams: [{ service: 'db', localPort: 0 }] },
      services: [
        {
          name: 'db',
          ports: [{ port: 5432, protocol: 'tcp' }],
          endpoints: [{ address: '127.0.0.1', port: server.inboundPort }],
        },
      ],
    });
  const web = await client('web');
  const intruder = await client('intruder');
  if (identities) {
    const ca = await meshCa();
    const id = async (sa: string) =>
      new StaticIdentitySource({ ...(await ca.issue(ca.id('default', sa))), trustBundlePem: ca.rootPem });
    server.proxy.setIdentity(await id('db'));
    web.proxy.setIdentity(await id('web'));
    intruder.proxy.setIdentity(await id('intruder'));
  }
  return { app, server, web: web.addr.upstreams.db.port, intruder: intruder.addr.upstreams.db.port };
}

test('issue 9: L4 ALLOW on principals applies to tunnels (mTLS): the allowed peer passes, another is closed', async (t) => {
  const ca = await meshCa();
  const m = await tcpMesh(
    t,
    [authz('only-web', { rules: [{ from: [{ source: { principals: [ca.id('default', 'web')] } }] }] })],
    true,
  );
  assert.equal(await ping(m.web), 'echo:ping');
  const before = m.app.connections;
  assert.equal(await ping(m.intruder), '');
  assert.equal(m.app.connections, before, 'the denied tunnel never reached the app');
});

test('issue 9: L4 DENY on namespaces, ipBlocks and ports closes tunnels; an ALLOW with HTTP-only fields allows none', async (t) => {
  // [case, policy, tunnel with an identity allowed, plain TCP without one allowed]
  for (const [what, policy, allowed, plainAllowed] of [
    [
      'DENY namespaces',
      authz('d', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['default'] } }] }] }),
      false,
      true,
    ],
    [
      'DENY notNamespaces',
      authz('d', { action: 'DENY', rules: [{ from: [{ source: { notNamespaces: ['default'] } }] }] }),
      true,
      false,
    ],
    [
      'DENY ipBlocks',
      authz('d', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['127.0.0.0/8'] } }] }] }),
      false,
      false,
    ],
    [
      'DENY other ipBlocks',
      authz('d', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }] }),
      true,
      true,
    ],
    ['DENY ports (the app port)', undefined, false, false],
    // Istio's reading for TCP: an ALLOW rule that needs HTTP never matches; a DENY rule drops its HTTP fields.
    [
      'ALLOW paths (HTTP-only)',
      authz('a', { rules: [{ to: [{ operation: { paths: ['/x'] } }] }] }),
      false,
      false,
    ],
    [
      'DENY paths (HTTP-only)',
      authz('d', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }),
      false,
      false,
    ],
  ] as const) {
    const app = await tcpApp(t);
    const pol =
      policy ?? authz('d', { action: 'DENY', rules: [{ to: [{ operation: { ports: [app.port] } }] }] });
    const server = await sidecar(t, {
      proxy: { service: 'db', app: { port: app.port, protocol: 'tcp' } },
      resources: [pol],
    });
    const ca = await meshCa();
    const certs = [await ca.issue(ca.id('default', 'db')), await ca.issue(ca.id('default', 'web'))];
    server.proxy.setIdentity(new StaticIdentitySource({ ...certs[0], trustBundlePem: ca.rootPem }));
    const client = await sidecar(t, {
      proxy: { service: 'web', upstreams: [{ service: 'db', localPort: 0 }] },
      services: [
        {
          name: 'db',
          ports: [{ port: 5432, protocol: 'tcp' }],
          endpoints: [{ address: '127.0.0.1', port: server.inboundPort }],
        },
      ],
    });
    client.proxy.setIdentity(new StaticIdentitySource({ ...certs[1], trustBundlePem: ca.rootPem }));
    const got = await ping(client.addr.upstreams.db.port);
    assert.equal(got, allowed ? 'echo:ping' : '', what);
    if (!allowed) assert.equal(app.connections, 0, `${what}: reached the app`);
    // Plain TCP straight at the inbound (no tunnel, no identity: PERMISSIVE) is decided too.
    assert.equal(await ping(server.inboundPort), plainAllowed ? 'echo:ping' : '', `${what} (plain TCP)`);
  }
});

test('issue 9: a declared opaque inbound port (proxy.opaquePorts) in front of an HTTP app is authorized per connection', async (t) => {
  const app = await httpApp(t);
  // Port 0 in the config is the inbound listener's own (it binds a free port).
  const open = await sidecar(t, { proxy: { service: 'orders', app: { port: app.port }, opaquePorts: [0] } });
  const raw = await rawExchange(open.inboundPort, request('orders', '/x'), { timeoutMs: 5000 });
  assert.equal(parseResponse(raw.text)?.body, 'ok /x', 'no policy: opaque bytes reach the app');
  const guarded = await sidecar(t, {
    proxy: { service: 'orders', app: { port: app.port }, opaquePorts: [0] },
    resources: [DENY_ADMIN],
  });
  const before = app.seen.length;
  // Raw bytes cannot be decided per path: the DENY rule, read for TCP, closes the connection.
  const denied = await rawExchange(guarded.inboundPort, request('orders', '/admin'), { timeoutMs: 5000 });
  assert.equal(denied.text, '');
  assert.equal(app.seen.length, before);
});
