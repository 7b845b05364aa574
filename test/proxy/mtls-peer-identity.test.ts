/**
 * Issue 9, inbound mTLS peer identity, with real certificates and real TLS: a client
 * certificate signed by a root of the bundle is refused when it has more than one URI SAN,
 * or when its SPIFFE ID is outside the mesh's trust domain and that domain is not
 * federated (proxy.federatedTrustDomains). Before, `spiffe://evil.example/ns/sec/...`
 * matched `namespaces: [sec]`.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { StaticIdentitySource } from '../../src/identity/static-identity-source.ts';
import { startHttpServer, startProxy, type RunningProxy } from '../support/mesh.ts';
import { TestCa, type IssuedCert } from '../support/pki.ts';
import { parseResponse } from '../support/raw.ts';

let mesh: TestCa;
let evil: TestCa;
let app: Awaited<ReturnType<typeof startHttpServer>>;
const proxies: RunningProxy[] = [];

before(async () => {
  [mesh, evil] = await Promise.all([
    TestCa.create('hexmesh.test', 'mesh'),
    TestCa.create('evil.example', 'evil'),
  ]);
  app = await startHttpServer((_req, res) => res.end('secret'));
});
after(async () => {
  for (const p of proxies) await p.close();
  await app.close();
});

/** Only namespace `sec` may call; STRICT mTLS; both roots in the bundle (as during a federation). */
async function server(proxy: Record<string, unknown> = {}): Promise<RunningProxy> {
  const p = await startProxy({
    proxy: { service: 'vault', namespace: 'sec', app: { port: app.port }, ...proxy },
    resources: [
      {
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'only-sec', namespace: 'sec' },
        spec: { rules: [{ from: [{ source: { namespaces: ['sec'] } }] }] },
      },
      {
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'PeerAuthentication',
        metadata: { name: 'strict', namespace: 'sec' },
        spec: { mode: 'STRICT' },
      },
    ],
  });
  proxies.push(p);
  const cert = await mesh.issue(mesh.id('sec', 'vault'));
  p.proxy.setIdentity(new StaticIdentitySource({ ...cert, trustBundlePem: mesh.rootPem + evil.rootPem }));
  return p;
}

/** GET / over mTLS with `cert`; the status, or 0 when the connection was closed without an answer. */
function get(port: number, cert: IssuedCert): Promise<number> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      cert: cert.certChainPem,
      key: cert.keyPem,
      ca: mesh.rootPem,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: () => undefined,
    });
    const timer = setTimeout(() => s.destroy(), 10_000);
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', () => {});
    s.once('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n\r\n'));
    s.once('close', () => {
      clearTimeout(timer);
      resolve(parseResponse(Buffer.concat(parts).toString('latin1'))?.status ?? 0);
    });
  });
}

async function handshakeFailures(p: RunningProxy): Promise<number> {
  const text = await (await fetch(`${p.adminUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('hexmesh_tls_handshake_failures_total{direction="inbound"}'));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('issue 9: a SPIFFE ID of a foreign trust domain is refused, even signed by a root of the bundle', async () => {
  const p = await server();
  assert.equal(await get(p.inboundPort, await mesh.issue(mesh.id('sec', 'ops'))), 200);
  const before = await handshakeFailures(p);
  // Signed by the mesh's own CA (a sloppy issuer), and by a foreign root in the bundle.
  assert.equal(await get(p.inboundPort, await mesh.issue('spiffe://evil.example/ns/sec/sa/ops')), 0);
  assert.equal(await get(p.inboundPort, await evil.issue(evil.id('sec', 'ops'))), 0);
  // Not a SPIFFE ID at all.
  assert.equal(await get(p.inboundPort, await mesh.issueWithUris(['https://hexmesh.test/ns/sec/sa/ops'])), 0);
  assert.ok((await handshakeFailures(p)) >= before + 3);
});

test('issue 9: a peer certificate with more than one URI SAN is refused', async () => {
  const p = await server();
  const two = await mesh.issueWithUris([mesh.id('default', 'web'), mesh.id('sec', 'ops')]);
  assert.equal(await get(p.inboundPort, two), 0);
  const twoSame = await mesh.issueWithUris([mesh.id('sec', 'ops'), mesh.id('sec', 'ops')]);
  assert.equal(await get(p.inboundPort, twoSame), 0);
  // One URI SAN from the same issuer path is fine.
  assert.equal(await get(p.inboundPort, await mesh.issueWithUris([mesh.id('sec', 'ops')])), 200);
});

test('issue 9: a trust domain listed in proxy.federatedTrustDomains is accepted and authorized', async () => {
  const p = await server({ federatedTrustDomains: ['evil.example'] });
  assert.equal(await get(p.inboundPort, await evil.issue(evil.id('sec', 'ops'))), 200);
  // Authorization still decides: a federated peer outside `sec` is denied.
  assert.equal(await get(p.inboundPort, await evil.issue(evil.id('default', 'ops'))), 403);
  // Federating one domain does not admit another.
  const other = await mesh.issue('spiffe://other.example/ns/sec/sa/ops');
  assert.equal(await get(p.inboundPort, other), 0);
});

test('issue 9: the client side refuses a server certificate with a second URI SAN, even when the first is expected', async () => {
  const server = await startProxy({ proxy: { service: 'vault', namespace: 'sec', app: { port: app.port } } });
  proxies.push(server);
  const two = await mesh.issueWithUris([mesh.id('sec', 'vault'), mesh.id('sec', 'admin')]);
  server.proxy.setIdentity(new StaticIdentitySource({ ...two, trustBundlePem: mesh.rootPem }));
  const client = await startProxy({
    proxy: { service: 'web', namespace: 'sec' },
    services: [
      { name: 'vault', namespace: 'sec', endpoints: [{ address: '127.0.0.1', port: server.inboundPort }] },
    ],
  });
  proxies.push(client);
  client.proxy.setIdentity(
    new StaticIdentitySource({ ...(await mesh.issue(mesh.id('sec', 'web'))), trustBundlePem: mesh.rootPem }),
  );
  const res = await new Promise<{ status: number; error: string | undefined }>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: client.addr.outbound.port, path: '/', headers: { host: 'vault' } },
      (m) => {
        m.resume();
        resolve({ status: m.statusCode ?? 0, error: m.headers['x-hexmesh-error'] as string | undefined });
      },
    );
    req.on('error', reject);
    req.end();
  });
  assert.equal(res.status, 502);
  assert.equal(res.error, 'tls-identity-mismatch');
});
