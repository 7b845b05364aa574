import assert from 'node:assert/strict';
import test from 'node:test';
import { parseProxyConfig } from '../../config/load.ts';
import { ProxyMetrics } from '../../telemetry/metrics.ts';
import { compose, type MeshRequest, type MeshResponse, type Service } from '../core/dispatch.ts';
import { errorResponse } from '../core/error-response.ts';
import { newContext } from '../listen/request-context.ts';
import { buildSecurityLayers } from './security-stack.ts';

const DENY_ADMIN = {
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny-admin', namespace: 'shop' },
  spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
};
const ALLOW_WEB = {
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'allow-web', namespace: 'shop' },
  spec: {
    targetRef: { kind: 'Service', name: 'orders' },
    rules: [
      {
        from: [{ source: { principals: ['spiffe://td/ns/shop/sa/web'] } }],
        to: [{ operation: { methods: ['GET', 'POST'] } }],
      },
    ],
  },
};

function stack(resources: unknown[]) {
  const config = parseProxyConfig({
    proxy: { service: 'orders', namespace: 'shop', app: { port: 8080 } },
    resources,
  });
  const metrics = new ProxyMetrics({ service: 'orders', namespace: 'shop', processMetrics: false });
  const seen: MeshRequest[] = [];
  const app: Service = (req) => {
    seen.push(req);
    return Promise.resolve({ status: 200, headers: {}, body: null });
  };
  const svc = compose(buildSecurityLayers(config, { metrics }), app);
  const call = async (init: {
    method?: string;
    path: string;
    peer?: string;
    headers?: Record<string, string>;
    grpc?: boolean;
  }): Promise<MeshResponse> => {
    const ctx = newContext(
      { direction: 'inbound', service: 'orders' },
      '127.0.0.1',
      new AbortController().signal,
    );
    ctx.peerIdentity = init.peer ?? '';
    const req: MeshRequest = {
      method: init.method ?? 'GET',
      authority: 'orders:80',
      path: init.path,
      headers: { ...(init.headers ?? {}), ...(init.grpc ? { 'content-type': 'application/grpc' } : {}) },
      body: null,
      protocol: init.grpc ? 'http2' : 'http1',
      grpc: init.grpc ?? false,
      ctx,
    };
    try {
      return await svc(req);
    } catch (err) {
      return errorResponse(err, req);
    }
  };
  return { call, seen, metrics };
}

async function text(res: MeshResponse): Promise<string> {
  let s = '';
  for await (const c of res.body ?? []) s += c;
  return s;
}

test('authz layer: DENY answers 403 denied naming the policy; the app sees only allowed, normalised paths', async () => {
  const { call, seen } = stack([DENY_ADMIN]);
  const denied = await call({ path: '/public/../admin/x' });
  assert.equal(denied.status, 403);
  assert.equal(denied.headers['x-hexmesh-error'], 'denied');
  assert.equal(await text(denied), 'denied by policy shop/deny-admin\n');
  const bad = await call({ path: '/admin%2fx' });
  assert.equal(bad.status, 400);
  assert.equal(bad.headers['x-hexmesh-error'], 'bad-request');
  const ok = await call({ path: '//public/./a/../b?q=1' });
  assert.equal(ok.status, 200);
  assert.deepEqual(
    seen.map((r) => r.path),
    ['/public/b?q=1'],
  );
});

test('authz layer: principals from ctx.peerIdentity; plaintext is unauthenticated', async () => {
  const { call } = stack([ALLOW_WEB]);
  assert.equal((await call({ path: '/', peer: 'spiffe://td/ns/shop/sa/web' })).status, 200);
  const other = await call({ path: '/', peer: 'spiffe://td/ns/shop/sa/batch' });
  assert.equal(other.status, 403);
  assert.match(await text(other), /no ALLOW policy of orders matches \(shop\/allow-web\)/);
  assert.equal((await call({ path: '/' })).status, 403);
  assert.equal((await call({ path: '/', method: 'DELETE', peer: 'spiffe://td/ns/shop/sa/web' })).status, 403);
});

test('authz layer: method override headers cannot smuggle a denied method', async () => {
  const { call, seen } = stack([ALLOW_WEB]);
  const web = 'spiffe://td/ns/shop/sa/web';
  for (const h of ['X-HTTP-Method-Override', 'x-http-method', 'x-method-override']) {
    const res = await call({
      path: '/',
      method: 'POST',
      peer: web,
      headers: { [h.toLowerCase()]: 'delete' },
    });
    assert.equal(res.status, 403, h);
  }
  // An override naming an allowed method passes (and reaches the app unchanged).
  const ok = await call({
    path: '/',
    method: 'POST',
    peer: web,
    headers: { 'x-http-method-override': 'GET' },
  });
  assert.equal(ok.status, 200);
  assert.equal(seen.length, 1);
});

test('authz layer: DENY on a method catches the override too', async () => {
  const { call } = stack([
    {
      ...DENY_ADMIN,
      metadata: { name: 'no-delete', namespace: 'shop' },
      spec: { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] },
    },
  ]);
  assert.equal(
    (await call({ path: '/', method: 'POST', headers: { 'x-http-method-override': 'DELETE' } })).status,
    403,
  );
  assert.equal((await call({ path: '/', method: 'POST' })).status, 200);
});

test('authz layer: gRPC denial is PERMISSION_DENIED', async () => {
  const { call } = stack([DENY_ADMIN]);
  const res = await call({ path: '/admin.Admin/Wipe', grpc: true });
  assert.equal(res.status, 200);
  assert.equal(res.headers['grpc-status'], '7');
  assert.equal(res.headers['x-hexmesh-error'], 'denied');
});

test('authz layer: decisions counted in hexmesh_authz_decisions_total', async () => {
  const { call, metrics } = stack([DENY_ADMIN, ALLOW_WEB]);
  const web = 'spiffe://td/ns/shop/sa/web';
  await call({ path: '/admin', peer: web });
  await call({ path: '/x', peer: web });
  await call({ path: '/x', peer: web });
  await call({ path: '/x' });
  await call({ path: '/x;y' });
  const lines = (await metrics.scrape())
    .split('\n')
    .filter((l) => l.startsWith('hexmesh_authz_decisions_total'));
  assert.deepEqual(lines.sort(), [
    'hexmesh_authz_decisions_total{policy="none",action="ALLOW",decision="denied"} 1',
    'hexmesh_authz_decisions_total{policy="none",action="none",decision="rejected"} 1',
    'hexmesh_authz_decisions_total{policy="shop/allow-web",action="ALLOW",decision="allowed"} 2',
    'hexmesh_authz_decisions_total{policy="shop/deny-admin",action="DENY",decision="denied"} 1',
  ]);
});

test('authz layer: policies of another namespace or service are not installed', async () => {
  const { call, seen } = stack([
    { ...DENY_ADMIN, metadata: { name: 'deny-admin', namespace: 'other' } },
    { ...ALLOW_WEB, spec: { ...ALLOW_WEB.spec, targetRef: { kind: 'Service', name: 'payments' } } },
  ]);
  assert.equal((await call({ path: '/admin/../x;y' })).status, 200);
  assert.equal(seen[0].path, '/admin/../x;y'); // no policy: the path is untouched
});
