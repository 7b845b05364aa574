/**
 * The control plane's own API under `auth: enforce` (docs/api-security.md): a role table
 * over representative routes, 401 without credentials, 403 naming the missing permission,
 * workload scoping, revocation, and no secret in any answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { call, startCp, type TestCp } from './helpers.ts';
import { createKeyAndCsr } from '../../src/identity/csr.ts';

type Role = 'admin' | 'operator' | 'viewer' | 'workload';

interface Row {
  what: string;
  method: string;
  path: string;
  body?: unknown;
  /** Roles that must be let through (any non-401/403 status). */
  allowed: readonly Role[];
  permission: string;
}

const svc = (name: string) => ({
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: { ports: [{ port: 80, protocol: 'http' }] },
});

// `workload` rows use an API token of role workload (as a script acting for a workload would).
const ROWS: Row[] = [
  {
    what: 'resources read',
    method: 'GET',
    path: '/v1/resources',
    allowed: ['admin', 'operator', 'viewer'],
    permission: 'resources:read',
  },
  {
    what: 'resources write',
    method: 'PUT',
    path: '/v1/resources/Service/shop/web',
    body: svc('web'),
    allowed: ['admin', 'operator'],
    permission: 'resources:write',
  },
  {
    what: 'apply',
    method: 'POST',
    path: '/v1/apply',
    body: [svc('api')],
    allowed: ['admin', 'operator'],
    permission: 'resources:write',
  },
  {
    what: 'KV keys',
    method: 'GET',
    path: '/v1/kv/?keys=1',
    allowed: ['admin', 'operator', 'viewer'],
    permission: 'kv:list',
  },
  {
    what: 'KV value',
    method: 'GET',
    path: '/v1/kv/app/a',
    allowed: ['admin', 'operator'],
    permission: 'kv:read',
  },
  {
    what: 'KV write',
    method: 'PUT',
    path: '/v1/kv/app/b',
    body: 'v',
    allowed: ['admin', 'operator'],
    permission: 'kv:write',
  },
  {
    what: 'catalog read',
    method: 'GET',
    path: '/v1/catalog/services',
    allowed: ['admin', 'operator', 'viewer'],
    permission: 'catalog:read',
  },
  {
    what: 'catalog register',
    method: 'PUT',
    path: '/v1/catalog/register',
    body: { service: 'web', namespace: 'shop', address: '127.0.0.1', port: 9 },
    allowed: ['admin', 'operator', 'workload'],
    permission: 'catalog:write',
  },
  {
    what: 'stats',
    method: 'GET',
    path: '/v1/stats/services',
    allowed: ['admin', 'operator', 'viewer'],
    permission: 'stats:read',
  },
  {
    what: 'error history',
    method: 'GET',
    path: '/v1/stats/errors?service=ratings',
    allowed: ['admin', 'operator', 'viewer'],
    permission: 'stats:read',
  },
  {
    what: 'prometheus sd',
    method: 'GET',
    path: '/v1/sd/prometheus',
    allowed: ['admin', 'operator', 'viewer'],
    permission: 'catalog:read',
  },
  {
    what: 'CA authorities',
    method: 'GET',
    path: '/v1/identity/ca',
    allowed: ['admin', 'operator', 'viewer'],
    permission: 'identity:read',
  },
  {
    what: 'join token create',
    method: 'POST',
    path: '/v1/identity/tokens',
    body: { namespace: 'shop', serviceAccount: 'web' },
    allowed: ['admin'],
    permission: 'identity:admin',
  },
  {
    what: 'CA rotation',
    method: 'POST',
    path: '/v1/identity/rotation/nope',
    allowed: ['admin'],
    permission: 'identity:admin',
  },
  {
    what: 'API token list',
    method: 'GET',
    path: '/v1/auth/tokens',
    allowed: ['admin'],
    permission: 'tokens:admin',
  },
  {
    what: 'API token create',
    method: 'POST',
    path: '/v1/auth/tokens',
    body: { name: 'x', role: 'viewer' },
    allowed: ['admin'],
    permission: 'tokens:admin',
  },
];

async function enforcing(): Promise<TestCp & { token: Record<Role, string>; secrets: string[] }> {
  const t = await startCp({ auth: { mode: 'enforce' }, identity: {}, discovery: true });
  const token = {} as Record<Role, string>;
  for (const role of ['admin', 'operator', 'viewer', 'workload'] as const)
    token[role] = (
      await t.cp.tokens.create({
        name: `t-${role}`,
        role,
        // A workload token is bound to one service (docs/api-security.md).
        ...(role === 'workload' && { subject: { namespace: 'shop', service: 'web' } }),
      })
    ).token;
  return { ...t, token, secrets: Object.values(token) };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

test(
  'role table: each role does what it should and nothing more; 401 without credentials',
  { timeout: 60_000 },
  async () => {
    const t = await enforcing();
    try {
      await t.cp.store.put('/hexmesh/kv/app/a', 'secret-value');
      for (const row of ROWS) {
        const anon = await call(t.url, row.method, row.path, row.body);
        assert.equal(anon.status, 401, `${row.what} without credentials`);
        assert.equal(anon.body.error.code, 'HEXMESH_ERR_UNAUTHENTICATED');
        assert.match(anon.body.error.message, new RegExp(`permission ${row.permission}`));
        for (const role of ['admin', 'operator', 'viewer', 'workload'] as const) {
          const r = await call(t.url, row.method, row.path, row.body, bearer(t.token[role]));
          const ok = role === 'admin' || row.allowed.includes(role);
          if (ok)
            assert.ok(
              r.status !== 401 && r.status !== 403,
              `${row.what} as ${role}: ${r.status} ${JSON.stringify(r.body)}`,
            );
          else if (!ok) {
            assert.equal(r.status, 403, `${row.what} as ${role}`);
            assert.equal(r.body.error.code, 'HEXMESH_ERR_DENIED');
            assert.equal(
              r.body.error.message,
              `${role === 'workload' ? 'workload spiffe://hexmesh.local/ns/shop/sa/web' : `role ${role}`} lacks permission ${row.permission} (needed for ${row.method} ${row.path.split('?')[0]})`,
            );
          }
          const text = JSON.stringify(r.body);
          for (const s of t.secrets)
            assert.ok(!text.includes(s.split('.')[2]), `${row.what} as ${role} leaks a token`);
        }
      }
      // A watch streams values: viewers are refused (a streaming answer is not awaited here).
      const watch = await call(t.url, 'GET', '/v1/watch?prefix=kv/app', undefined, bearer(t.token.viewer));
      assert.equal(watch.status, 403);
      assert.match(watch.body.error.message, /lacks permission kv:read/);
      // Public: liveness and the trust bundle.
      assert.equal((await call(t.url, 'GET', '/v1/health')).status, 200);
      assert.equal((await call(t.url, 'GET', '/v1/identity/bundle?format=json')).status, 200);
    } finally {
      await t.close();
    }
  },
);

test(
  'a route that declares no permission is denied; a wrong or revoked token is 401',
  { timeout: 30_000 },
  async () => {
    const t = await enforcing();
    try {
      t.cp.router.add('GET', '/v1/undeclared', async () => ({ json: { leaked: true } }));
      const r = await call(t.url, 'GET', '/v1/undeclared', undefined, bearer(t.token.admin));
      assert.equal(r.status, 403);
      assert.match(r.body.error.message, /declares no permission/);

      const created = await call(
        t.url,
        'POST',
        '/v1/auth/tokens',
        { name: 'ci', role: 'operator', ttl: '1h' },
        bearer(t.token.admin),
      );
      assert.equal(created.status, 201);
      const ci: string = created.body.token;
      assert.match(ci, /^hxat\.[0-9a-f]{16}\./);
      assert.equal((await call(t.url, 'GET', '/v1/kv/app/x', undefined, bearer(ci))).status, 404);
      const list = await call(t.url, 'GET', '/v1/auth/tokens', undefined, bearer(t.token.admin));
      assert.ok(list.body.some((x: { name: string }) => x.name === 'ci'));
      assert.ok(!JSON.stringify(list.body).includes(ci.split('.')[2]), 'the list never shows a secret');
      assert.ok(!JSON.stringify(list.body).includes('hash'));
      // The store holds only the hash.
      const stored = await t.cp.store.range('/hexmesh/auth/tokens/');
      assert.ok(!stored.kvs.some((kv) => kv.value.includes(ci.split('.')[2])));

      assert.equal(
        (await call(t.url, 'DELETE', `/v1/auth/tokens/${created.body.id}`, undefined, bearer(t.token.admin)))
          .status,
        200,
      );
      const revoked = await call(t.url, 'GET', '/v1/kv/app/x', undefined, bearer(ci));
      assert.equal(revoked.status, 401);
      assert.match(revoked.body.error.message, /unknown or revoked token [0-9a-f]{16}$/);
      assert.ok(!revoked.body.error.message.includes(ci.split('.')[2]));

      const wrong = `${ci.split('.').slice(0, 2).join('.')}.AAAA`;
      assert.equal((await call(t.url, 'GET', '/v1/resources', undefined, bearer(wrong))).status, 401);
      assert.equal(
        (await call(t.url, 'GET', '/v1/resources', undefined, { authorization: 'Basic eDp5' })).status,
        401,
      );
      const who = await call(t.url, 'GET', '/v1/auth/whoami', undefined, bearer(t.token.viewer));
      assert.deepEqual({ role: who.body.role, name: who.body.name }, { role: 'viewer', name: 't-viewer' });
    } finally {
      await t.close();
    }
  },
);

test('auth off (the in-process default) lets every call through', async () => {
  const t = await startCp();
  try {
    assert.equal((await call(t.url, 'PUT', '/v1/kv/a', 'x')).status, 200);
    assert.deepEqual((await call(t.url, 'GET', '/v1/auth/whoami')).body, { auth: 'off' });
  } finally {
    await t.close();
  }
});

/** Open a discovery stream with `headers`; resolves with the first message or the close/refusal. */
function discovery(
  url: string,
  headers: Record<string, string>,
  hello?: unknown,
): Promise<{ status?: number; message?: any; close?: { code: number; reason: string } }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/discovery`, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => ws.send(JSON.stringify(hello)));
    ws.on('message', (d) => {
      resolve({ message: JSON.parse(String(d)) });
      ws.close(1000);
    });
    ws.on('close', (code, reason) => resolve({ close: { code, reason: String(reason) } }));
    ws.on('error', () => {});
  });
}

const node = (service: string) => ({
  type: 'hello',
  node: { id: `${service}-1`, service, namespace: 'shop', address: '127.0.0.1' },
});

test(
  'workloads: a join token opens discovery for its own service only; certificates only for itself',
  { timeout: 30_000 },
  async () => {
    const t = await enforcing();
    try {
      assert.equal((await discovery(t.url, {}, node('web'))).status, 401);
      assert.equal((await discovery(t.url, bearer(t.token.viewer), node('web'))).status, 403);
      const web = (await t.cp.identity.tokens.create('shop', 'web', 60_000)).token;
      const ok = await discovery(t.url, bearer(web), node('web'));
      assert.equal(ok.message?.type, 'snapshot');
      const other = await discovery(t.url, bearer(web), node('api'));
      assert.equal(other.close?.code, 1008);
      assert.match(other.close!.reason, /may act only for service web/);
      // A join token is good for discovery only, not for the REST API.
      const rest = await call(t.url, 'GET', '/v1/catalog/services', undefined, bearer(web));
      assert.equal(rest.status, 403);
      assert.match(
        rest.body.error.message,
        /^workload spiffe:\/\/hexmesh\.local\/ns\/shop\/sa\/web lacks permission catalog:read/,
      );

      // Certificate: the web token cannot get the api identity, even with web's token as bearer.
      const api = (await t.cp.identity.tokens.create('shop', 'api', 60_000)).token;
      const { csrPem } = await createKeyAndCsr();
      const cross = await call(
        t.url,
        'POST',
        '/v1/identity/certificate',
        { csr: csrPem, token: api },
        bearer(web),
      );
      assert.equal(cross.status, 403);
      assert.match(
        cross.body.error.message,
        /may not get a certificate for spiffe:\/\/hexmesh\.local\/ns\/shop\/sa\/api/,
      );
      const own = await call(
        t.url,
        'POST',
        '/v1/identity/certificate',
        { csr: csrPem, token: web },
        bearer(web),
      );
      assert.equal(own.status, 200);
      assert.equal(own.body.spiffeId, 'spiffe://hexmesh.local/ns/shop/sa/web');
    } finally {
      await t.close();
    }
  },
);
