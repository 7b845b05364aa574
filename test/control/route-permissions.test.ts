// Every API route must declare the permission it needs: a route without one is denied when
// auth is enforced, which silently broke /v1/tap and /v1/proxies/:target/diagnose once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { call, startCp } from './helpers.ts';

test('every control-plane API route declares a permission', async (t) => {
  const c = await startCp({ discovery: true });
  t.after(() => c.close());
  assert.deepEqual(c.cp.router.undeclared(), []);
});

test('a viewer reads rollout status from KV but not other KV values; tap needs the tap permission', async (t) => {
  const c = await startCp({ auth: { mode: 'enforce' } });
  t.after(() => c.close());
  const admin = await c.cp.tokens.create({ name: 'admin', role: 'admin' });
  const viewer = await c.cp.tokens.create({ name: 'viewer', role: 'viewer' });
  const as = (tok: string) => ({ authorization: `Bearer ${tok}` });
  assert.equal(
    (
      await call(
        c.url,
        'PUT',
        '/v1/kv/rollouts/default/r1/status',
        '{"phase":"Progressing"}',
        as(admin.token),
      )
    ).status,
    200,
  );
  assert.equal((await call(c.url, 'PUT', '/v1/kv/app/secret', 'x', as(admin.token))).status, 200);
  assert.equal(
    (await call(c.url, 'GET', '/v1/kv/rollouts/default/r1/status', undefined, as(viewer.token))).status,
    200,
  );
  assert.equal(
    (await call(c.url, 'GET', '/v1/kv/rollouts/?recurse=1', undefined, as(viewer.token))).status,
    200,
  );
  const secret = await call(c.url, 'GET', '/v1/kv/app/secret', undefined, as(viewer.token));
  assert.equal(secret.status, 403);
  const tap = await call(c.url, 'GET', '/v1/tap?service=nobody', undefined, as(viewer.token));
  assert.equal(tap.status, 403);
  assert.match(JSON.stringify(tap.body), /lacks permission tap/);
});
