/**
 * The runner's credentials against a real control plane with auth enforced: the bootstrap
 * token is read only for the URL it names, and join tokens are one per identity, shared by
 * concurrent starts, renewed past half their life and revoked at shutdown.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startCp } from '../control/helpers.ts';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { ensureBootstrapCredentials } from '../../src/control/auth/bootstrap.ts';
import { credentialsFile, waitForBootstrapToken } from '../../src/runtime/bootstrap-token.ts';
import { JoinTokenIssuer } from '../../src/runtime/join-token-issuer.ts';

async function setup(t: import('node:test').TestContext) {
  const cp = await startCp({ auth: { mode: 'enforce' } });
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-creds-'));
  t.after(async () => {
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { cp, dir, file: credentialsFile(dir) };
}

test('the bootstrap token is waited for, and only taken for the URL its context names', async (t) => {
  const { cp, file } = await setup(t);
  // Written while the runner already waits.
  const waiting = waitForBootstrapToken(file, `${cp.url}/`, { timeoutMs: 5000, pollMs: 20 });
  await new Promise((r) => setTimeout(r, 100));
  await ensureBootstrapCredentials(cp.cp.tokens, file, cp.url);
  const token = await waiting;
  const client = new ControlClient(cp.url, { token });
  t.after(() => client.destroy());
  // Admin: it may do what the runner does (KV writes for rollouts, join tokens).
  assert.equal((await client.kvPut('runner/check', 'x')).status, 200);
  assert.equal((await client.request('GET', '/v1/identity/tokens')).status, 200);

  await assert.rejects(
    waitForBootstrapToken(file, 'http://127.0.0.1:1', { timeoutMs: 200, pollMs: 20 }),
    (e: Error) => e.message.includes(`names ${cp.url}, not http://127.0.0.1:1`) && !e.message.includes(token),
  );
  await assert.rejects(
    waitForBootstrapToken(join(file, '..', 'none.json'), cp.url, { timeoutMs: 5000, isAlive: () => false }),
    /exited before writing its admin credentials/,
  );
});

test('join tokens: one per instance, shared by concurrent starts, renewed past half life, revoked at close', async (t) => {
  const { cp } = await setup(t);
  const { token } = await cp.cp.tokens.create({ name: 'runner', role: 'admin' });
  const client = new ControlClient(cp.url, { token });
  t.after(() => client.destroy());
  let now = Date.now();
  const issuer = new JoinTokenIssuer(client, { ttlMs: 3_600_000, now: () => now });

  const [a, b] = await Promise.all([
    issuer.get('default', 'web', 'web-1'),
    issuer.get('default', 'web', 'web-1'),
  ]);
  assert.equal(a, b, 'concurrent starts share one token');
  assert.match(a, /^hxjt\./);
  const c = await issuer.get('default', 'cart', 'cart-1');
  assert.notEqual(c, a);
  // A sibling instance of the same service gets its own token, bound to it.
  const w2 = await issuer.get('default', 'web', 'web-2');
  assert.notEqual(w2, a);
  const info = await cp.cp.identity.tokens.verify(a);
  assert.deepEqual([info.namespace, info.serviceAccount, info.instance], ['default', 'web', 'web-1']);
  assert.equal((await cp.cp.identity.tokens.list()).length, 3);

  now += 1_000_000; // 3/4 of the life left: kept
  assert.equal(await issuer.get('default', 'web', 'web-1'), a);
  now += 1_000_000; // less than half left: a new one
  const a2 = await issuer.get('default', 'web', 'web-1');
  assert.notEqual(a2, a);

  await issuer.revokeAll();
  for (const tok of [a2, c, w2]) await assert.rejects(cp.cp.identity.tokens.verify(tok));

  // Without identity:admin (a viewer) nothing is issued, and the failure is not cached.
  const viewer = await cp.cp.tokens.create({ name: 'viewer', role: 'viewer' });
  const vc = new ControlClient(cp.url, { token: viewer.token });
  t.after(() => vc.destroy());
  const denied = new JoinTokenIssuer(vc);
  await assert.rejects(denied.get('default', 'web', 'web-1'), /lacks permission identity:admin/);
  await assert.rejects(denied.get('default', 'web', 'web-1'), /lacks permission identity:admin/);
});
