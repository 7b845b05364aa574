/**
 * Issue 10, "credentials are bound to one identity": every workload credential (API token of
 * role workload, join token, certificate) acts for one service only — catalog writes,
 * heartbeats, the discovery session and its admin address, and the proxy id of a
 * certificate request. Real control plane, real sockets, auth enforced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { call, startCp, type TestCp } from './helpers.ts';
import { createKeyAndCsr } from '../../src/identity/csr.ts';
import { API_TOKENS_PREFIX } from '../../src/control/auth/api-tokens.ts';
import { CA_KEYS } from '../../src/identity/ca.ts';
import { KEYS } from '../../src/store/store.ts';
import { mintSecret } from '../../src/util/secret-token.ts';
import { startHttpServer } from '../support/mesh.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function enforcing(): Promise<TestCp & { admin: string }> {
  const t = await startCp({ auth: { mode: 'enforce' }, identity: {}, discovery: true });
  const admin = (await t.cp.tokens.create({ name: 'admin', role: 'admin' })).token;
  return { ...t, admin };
}

/** A discovery stream that stays open: its first message and, later, its close. */
interface Stream {
  first: Promise<{ message?: any; close?: { code: number; reason: string } }>;
  closed: { code: number; reason: string } | undefined;
  ws: WebSocket;
}

function openStream(url: string, token: string, node: Record<string, unknown>): Stream {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/discovery`, { headers: bearer(token) });
  const s: Stream = { ws, closed: undefined, first: undefined as never };
  s.first = new Promise((resolve) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', node })));
    ws.once('message', (d) => resolve({ message: JSON.parse(String(d)) }));
    ws.on('close', (code, reason) => {
      s.closed = { code, reason: String(reason) };
      resolve({ close: s.closed });
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ close: { code: res.statusCode ?? 0, reason: 'refused at upgrade' } });
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => {});
  });
  return s;
}

test('issue 10: a workload API token must name its service; an unbound one is refused for catalog writes and discovery', async () => {
  const t = await enforcing();
  try {
    const noService = await call(
      t.url,
      'POST',
      '/v1/auth/tokens',
      { name: 'w', role: 'workload' },
      bearer(t.admin),
    );
    assert.equal(noService.status, 400);
    assert.match(noService.body.error.message, /must be bound to one service/);
    const viewerWithService = await call(
      t.url,
      'POST',
      '/v1/auth/tokens',
      { name: 'v', role: 'viewer', service: 'web' },
      bearer(t.admin),
    );
    assert.equal(viewerWithService.status, 400);

    const made = await call(
      t.url,
      'POST',
      '/v1/auth/tokens',
      { name: 'web-script', role: 'workload', service: 'web', namespace: 'shop' },
      bearer(t.admin),
    );
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.deepEqual(made.body.subject, { namespace: 'shop', service: 'web' });
    const who = await call(t.url, 'GET', '/v1/auth/whoami', undefined, bearer(made.body.token));
    assert.equal(who.body.spiffeId, 'spiffe://hexmesh.local/ns/shop/sa/web');
    assert.equal(who.body.via, 'api-token');

    // A workload token from before binding existed (a record without subject).
    const { token, id, hash } = mintSecret('hxat');
    await t.store.put(
      API_TOKENS_PREFIX + id,
      JSON.stringify({ id, name: 'old', role: 'workload', hash, createdAt: new Date().toISOString() }),
    );
    const reg = await call(
      t.url,
      'PUT',
      '/v1/catalog/register',
      { service: 'exact', address: '127.0.0.1', port: 9 },
      bearer(token),
    );
    assert.equal(reg.status, 403);
    assert.match(
      reg.body.error.message,
      new RegExp(`API token ${id} of role workload is bound to no service`),
    );
    const hello = await openStream(t.url, token, { id: 'x-1', service: 'exact', address: '127.0.0.1' }).first;
    assert.equal(hello.close?.code, 403, 'refused at the upgrade');
  } finally {
    await t.close();
  }
});

test('issue 10: a workload token for web cannot register, report, deregister or keep alive exact', async () => {
  const t = await enforcing();
  try {
    const web = (
      await t.cp.tokens.create({
        name: 'web',
        role: 'workload',
        subject: { namespace: 'default', service: 'web' },
      })
    ).token;
    const exactReg = await call(
      t.url,
      'PUT',
      '/v1/catalog/register',
      { id: 'exact-1', service: 'exact', address: '127.0.0.1', port: 9, meshPort: 10 },
      bearer(t.admin),
    );
    assert.equal(exactReg.status, 200);

    const rogue = await call(
      t.url,
      'PUT',
      '/v1/catalog/register',
      { id: 'rogue', service: 'exact', address: '127.0.0.1', port: 11 },
      bearer(web),
    );
    assert.equal(rogue.status, 403);
    assert.equal(
      rogue.body.error.message,
      'workload spiffe://hexmesh.local/ns/default/sa/web may act only for service web in namespace default, not exact in default',
    );
    for (const path of [
      '/v1/catalog/status/default/exact/exact-1',
      '/v1/catalog/deregister/default/exact/exact-1',
    ]) {
      const r = await call(t.url, 'PUT', path, { status: 'critical' }, bearer(web));
      assert.equal(r.status, 403, path);
      assert.match(r.body.error.message, /may act only for service web .* not exact in default/);
    }
    const hb = await call(
      t.url,
      'PUT',
      `/v1/catalog/heartbeat/${exactReg.body.lease}`,
      undefined,
      bearer(web),
    );
    assert.equal(hb.status, 403);
    assert.match(hb.body.error.message, /is instance exact-1 of service exact in namespace default/);
    const unknown = await call(t.url, 'PUT', '/v1/catalog/heartbeat/999999', undefined, bearer(web));
    assert.equal(unknown.status, 404, 'no instance holds it: register again');

    const inst = await t.store.get(KEYS.instance('default', 'exact', 'exact-1'));
    assert.equal(JSON.parse(inst!.value).status, 'passing', "exact's instance untouched");

    // Its own: allowed, and the admin host is where the call comes from, whatever was named.
    const own = await call(
      t.url,
      'PUT',
      '/v1/catalog/register',
      { id: 'web-1', service: 'web', address: '127.0.0.1', port: 12, adminAddress: '169.254.169.254:80' },
      bearer(web),
    );
    assert.equal(own.status, 200, JSON.stringify(own.body));
    const rec = JSON.parse((await t.store.get(KEYS.instance('default', 'web', 'web-1')))!.value);
    assert.equal(rec.adminAddress, '127.0.0.1:80');
    assert.equal(
      (await call(t.url, 'PUT', `/v1/catalog/heartbeat/${own.body.lease}`, undefined, bearer(web))).status,
      200,
    );
    assert.equal(
      (await call(t.url, 'PUT', '/v1/catalog/status/default/web/web-1', { status: 'warning' }, bearer(web)))
        .status,
      200,
    );
  } finally {
    await t.close();
  }
});

test('issue 10: a join token for web cannot take over exact-1 (no kick) nor point the control plane at another host (no SSRF)', async () => {
  const t = await enforcing();
  // What the attacker wanted the control plane to fetch; it must never be called.
  let fetchedByCp = 0;
  const target = await startHttpServer((_req, res) => {
    fetchedByCp++;
    res.end('{}');
  });
  const streams: Stream[] = [];
  try {
    const exactToken = (await t.cp.identity.tokens.create('default', 'exact', 60_000)).token;
    const webToken = (await t.cp.identity.tokens.create('default', 'web', 60_000)).token;
    const exact = openStream(t.url, exactToken, { id: 'exact-1', service: 'exact', address: '127.0.0.1' });
    streams.push(exact);
    assert.equal((await exact.first).message?.type, 'snapshot');

    const asExact = openStream(t.url, webToken, { id: 'exact-1', service: 'exact', address: '127.0.0.1' });
    streams.push(asExact);
    const refused = await asExact.first;
    assert.equal(refused.close?.code, 1008);
    // The whole mismatch fits the close reason (123 bytes).
    assert.equal(
      refused.close!.reason,
      'may act only for service web in namespace default, not exact in default',
    );

    // Same id under its own service: a session of web's, not a replacement of exact's.
    const sameId = openStream(t.url, webToken, {
      id: 'exact-1',
      service: 'web',
      address: '127.0.0.1',
      appPort: 1,
      meshPort: 2,
      adminAddress: `evil.example:${target.port}`,
    });
    streams.push(sameId);
    assert.equal((await sameId.first).message?.type, 'snapshot');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(exact.closed, undefined, "exact's stream was not replaced");

    // The admin address recorded is the stream's own address with the port it named.
    const proxies = await t.store.range(KEYS.proxies);
    const webRec = proxies.kvs.map((kv) => JSON.parse(kv.value)).find((p) => p.service === 'web');
    assert.equal(webRec.adminAddress, `127.0.0.1:${target.port}`);
    assert.ok(
      proxies.kvs.some((kv) => kv.key === `${KEYS.proxies}default/exact/exact-1`),
      "exact's proxy record is its own",
    );
    const inst = JSON.parse((await t.store.get(KEYS.instance('default', 'web', 'exact-1')))!.value);
    assert.equal(inst.adminAddress, `127.0.0.1:${target.port}`);

    // A free URL in the legacy field gives only its port too.
    const legacy = openStream(t.url, webToken, {
      id: 'web-2',
      service: 'web',
      address: '127.0.0.1',
      adminAddress: 'http://169.254.169.254/latest/meta-data:80',
    });
    streams.push(legacy);
    assert.equal((await legacy.first).message?.type, 'snapshot');
    const legacyRec = (await t.store.range(KEYS.proxies)).kvs
      .map((kv) => JSON.parse(kv.value))
      .find((p) => p.id === 'web-2');
    assert.equal(legacyRec.adminAddress, '127.0.0.1:80');
    assert.equal(fetchedByCp, 0);
  } finally {
    for (const s of streams) s.ws.terminate();
    await target.close();
    await t.close();
  }
});

test("issue 10: a certificate request's proxyId is scoped to the identity it is issued for", async () => {
  const t = await enforcing();
  try {
    const exactToken = (await t.cp.identity.tokens.create('default', 'exact', 60_000)).token;
    const webToken = (await t.cp.identity.tokens.create('default', 'web', 60_000)).token;
    const sign = async (token: string, proxyId: string) => {
      const { csrPem } = await createKeyAndCsr();
      return call(t.url, 'POST', '/v1/identity/certificate', { csr: csrPem, token, proxyId });
    };
    assert.equal((await sign(exactToken, 'exact-1')).status, 200);
    assert.equal((await sign(webToken, 'exact-1')).status, 200);
    const recs = (await t.store.range(CA_KEYS.issued)).kvs.map((kv) => JSON.parse(kv.value));
    const forExact = recs.filter((r) => r.proxyId === 'exact-1');
    assert.deepEqual(forExact.map((r) => r.spiffeId).sort(), [
      'spiffe://hexmesh.local/ns/default/sa/exact',
      'spiffe://hexmesh.local/ns/default/sa/web',
    ]);
    const bad = await sign(webToken, '../exact-1');
    assert.equal(bad.status, 400);
  } finally {
    await t.close();
  }
});

test('issue 10: a workload token bound to one instance acts for that instance only', async () => {
  const t = await enforcing();
  const streams: Stream[] = [];
  try {
    const made = await call(
      t.url,
      'POST',
      '/v1/auth/tokens',
      { name: 'web-1', role: 'workload', service: 'web', instance: 'web-1' },
      bearer(t.admin),
    );
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const web1 = made.body.token as string;
    const reg = (id: string) =>
      call(
        t.url,
        'PUT',
        '/v1/catalog/register',
        { id, service: 'web', address: '127.0.0.1', port: 9 },
        bearer(web1),
      );
    const other = await reg('web-2');
    assert.equal(other.status, 403);
    assert.equal(
      other.body.error.message,
      'workload spiffe://hexmesh.local/ns/default/sa/web may act only for instance web-1, not web-2',
    );
    const own = await reg('web-1');
    assert.equal(own.status, 200, JSON.stringify(own.body));
    // web-2 registered by someone allowed to: web-1's token cannot report for it or keep it alive.
    const web2 = await call(
      t.url,
      'PUT',
      '/v1/catalog/register',
      { id: 'web-2', service: 'web', address: '127.0.0.1', port: 10 },
      bearer(t.admin),
    );
    const status = await call(
      t.url,
      'PUT',
      '/v1/catalog/status/default/web/web-2',
      { status: 'critical' },
      bearer(web1),
    );
    assert.equal(status.status, 403);
    const hb = await call(t.url, 'PUT', `/v1/catalog/heartbeat/${web2.body.lease}`, undefined, bearer(web1));
    assert.equal(hb.status, 403);
    assert.equal(
      (await call(t.url, 'PUT', `/v1/catalog/heartbeat/${own.body.lease}`, undefined, bearer(web1))).status,
      200,
    );
    const hello = openStream(t.url, web1, { id: 'web-2', service: 'web', address: '127.0.0.1' });
    streams.push(hello);
    const refused = await hello.first;
    assert.equal(refused.close?.code, 1008);
    assert.equal(refused.close!.reason, 'may act only for instance web-1, not web-2');
  } finally {
    for (const s of streams) s.ws.terminate();
    await t.close();
  }
});
