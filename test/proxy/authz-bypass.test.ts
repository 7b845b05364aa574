/**
 * Issue 9, "authorization must not be skippable", end to end with real sidecars and real
 * sockets: every spelling of a host matches a `hosts` rule; a tunnel preface never carries
 * bytes past the HTTP layers to an HTTP app; HTTP after a leading CRLF is parsed and
 * authorized; L4 rules (principals, namespaces, ipBlocks, ports) apply to opaque TCP.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import test from 'node:test';
import { startHttpServer, startProxy, type RunningProxy } from '../support/mesh.ts';
import { parseResponse, rawExchange } from '../support/raw.ts';

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
