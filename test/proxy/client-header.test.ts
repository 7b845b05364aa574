/**
 * x-hexmesh-client names the calling service to the destination's sidecar. Only the sidecar
 * may set it: an app that sends its own must not be able to impersonate another caller.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { request } from 'undici';
import { startHttpServer, startPair, startProxy } from '../support/mesh.ts';

test('x-hexmesh-client from the app is not forwarded to a mesh-less endpoint', async (t) => {
  const app = await startHttpServer((req, res) => res.end(String(req.headers['x-hexmesh-client'] ?? '-')));
  const p = await startProxy({
    proxy: { service: 'web' },
    services: [{ name: 'legacy', endpoints: [{ address: '127.0.0.1', port: app.port, meshed: false }] }],
  });
  t.after(async () => {
    await p.close();
    await app.close();
  });
  const r = await request(`${p.outboundUrl}/`, { headers: { host: 'legacy', 'x-hexmesh-client': 'admin' } });
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), '-');
});

test('x-hexmesh-client from the app does not change the caller the destination sees', async (t) => {
  const app = await startHttpServer((req, res) => res.end(String(req.headers['x-hexmesh-client'] ?? '-')));
  const mesh = await startPair({ service: 'greeter', appPort: app.port });
  t.after(async () => {
    await mesh.close();
    await app.close();
  });
  const r = await request(`${mesh.client.outboundUrl}/`, {
    headers: { host: 'greeter', 'x-hexmesh-client': 'admin' },
  });
  assert.equal(await r.body.text(), '-', 'the inbound side consumes the header');
  const metrics = await (await request(`${mesh.server.adminUrl}/metrics`)).body.text();
  assert.match(metrics, /hexmesh_requests_total\{[^}]*src_service="client"/);
  assert.doesNotMatch(metrics, /src_service="admin"/);
});

test('x-hexmesh-client from the app is not forwarded on an upgrade to a mesh-less endpoint', async (t) => {
  let seen: string | undefined;
  const app = await startHttpServer((_req, res) => res.end());
  app.server.on('upgrade', (req, socket) => {
    seen = String(req.headers['x-hexmesh-client'] ?? '-');
    socket.end('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
  });
  const p = await startProxy({
    proxy: { service: 'web' },
    services: [{ name: 'legacy', endpoints: [{ address: '127.0.0.1', port: app.port, meshed: false }] }],
  });
  t.after(async () => {
    await p.close();
    await app.close();
  });
  const s = net.connect(p.addr.outbound.port, '127.0.0.1');
  t.after(() => s.destroy());
  s.write(
    'GET /ws HTTP/1.1\r\nhost: legacy\r\nconnection: upgrade\r\nupgrade: websocket\r\nx-hexmesh-client: admin\r\n\r\n',
  );
  const head = await new Promise<string>((resolve, reject) => {
    s.once('data', (d) => resolve(d.toString('latin1')));
    s.once('error', reject);
  });
  assert.match(head, /^HTTP\/1.1 101/);
  assert.equal(seen, '-');
});

test('a request the destination sidecar refuses (authz 403) is counted from its caller, not unknown', async (t) => {
  const app = await startHttpServer((_req, res) => res.end('ok'));
  const server = await startProxy({
    proxy: { service: 'greeter', app: { host: '127.0.0.1', port: app.port, protocol: 'http' } },
    resources: [
      {
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'deny-admin' },
        spec: {
          targetRef: { kind: 'Service', name: 'greeter' },
          action: 'DENY',
          rules: [{ to: [{ operation: { paths: ['/admin'] } }] }],
        },
      },
    ],
  });
  const client = await startProxy({
    proxy: { service: 'web' },
    services: [{ name: 'greeter', endpoints: [{ address: '127.0.0.1', port: server.inboundPort }] }],
  });
  t.after(async () => {
    await client.close();
    await server.close();
    await app.close();
  });
  const denied = await request(`${client.outboundUrl}/admin`, { headers: { host: 'greeter' } });
  await denied.body.dump();
  assert.equal(denied.statusCode, 403);
  assert.equal(denied.headers['x-hexmesh-error'], 'denied');
  const metrics = await (await request(`${server.adminUrl}/metrics`)).body.text();
  assert.match(
    metrics,
    /hexmesh_requests_total\{direction="inbound",src_service="web",dst_service="greeter",[^}]*status_code="403"/,
  );
  assert.doesNotMatch(metrics, /src_service="unknown"/);
});
