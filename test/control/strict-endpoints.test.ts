/**
 * Issue 10: an endpoint of a STRICT service without a mesh port is never chosen by a
 * sidecar. The attack: a registration of `exact` without a mesh port (a rogue plaintext
 * server); 40/40 calls web→exact, Authorization header included, went to it in plaintext
 * despite STRICT mTLS. Now the registration is refused, a mesh-less instance that got into the
 * store anyway is left out of the views, and a sidecar drops one it is sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startControlledProxy } from '../../src/proxy/control-client/controlled-proxy.ts';
import { KEYS } from '../../src/store/store.ts';
import { startHttpServer, startProxy } from '../support/mesh.ts';
import { call, startCp } from './helpers.ts';

const any = { address: '127.0.0.1', port: 0 };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** One GET through a sidecar's outbound listener to `host`. */
function get(outboundPort: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port: outboundPort,
        path: '/secret',
        headers: { host, authorization: 'Bearer user-session-token' },
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

test(
  'issue 10: a rogue mesh-less registration for a STRICT service is refused and never gets a request from a client sidecar',
  { timeout: 120_000 },
  async () => {
    const t = await startCp({ auth: { mode: 'enforce' }, identity: {}, discovery: true });
    const exactApp = await startHttpServer((_req, res) => res.end('exact'));
    let rogueHits = 0;
    const rogue = await startHttpServer((_req, res) => {
      rogueHits++;
      res.end('rogue');
    });
    const started: { close(): Promise<void> }[] = [];
    try {
      const admin = (await t.cp.tokens.create({ name: 'admin', role: 'admin' })).token;
      const strict = await call(
        t.url,
        'PUT',
        '/v1/resources/PeerAuthentication/default/exact-strict',
        {
          apiVersion: 'hexmesh.io/v1alpha1',
          kind: 'PeerAuthentication',
          metadata: { name: 'exact-strict', namespace: 'default' },
          spec: { targetRef: { kind: 'Service', name: 'exact' }, mode: 'STRICT' },
        },
        bearer(admin),
      );
      assert.ok(strict.status === 200 || strict.status === 201, JSON.stringify(strict.body));

      // The rogue registration, with a credential good for exact itself and with an operator's.
      const exactScript = (
        await t.cp.tokens.create({
          name: 'exact-script',
          role: 'workload',
          subject: { namespace: 'default', service: 'exact' },
        })
      ).token;
      const operator = (await t.cp.tokens.create({ name: 'ops', role: 'operator' })).token;
      for (const token of [exactScript, operator]) {
        const r = await call(
          t.url,
          'PUT',
          '/v1/catalog/register',
          { id: 'rogue-1', service: 'exact', address: '127.0.0.1', port: rogue.port },
          bearer(token),
        );
        assert.equal(r.status, 403, JSON.stringify(r.body));
        assert.match(r.body.error.message, /requires mutual TLS \(PeerAuthentication STRICT\)/);
      }

      const exact = await startControlledProxy({
        control: [t.url],
        id: 'exact-1',
        settings: { service: 'exact', inbound: any, outbound: any, admin: any, app: { port: exactApp.port } },
        identity: { joinToken: (await t.cp.identity.tokens.create('default', 'exact', 600_000)).token },
        client: { backoff: { initial: 50, max: 500 }, log: () => {} },
      });
      started.push(exact);
      const web = await startControlledProxy({
        control: [t.url],
        settings: { service: 'web', inbound: any, outbound: any, admin: any },
        identity: { joinToken: (await t.cp.identity.tokens.create('default', 'web', 600_000)).token },
        client: { backoff: { initial: 50, max: 500 }, log: () => {} },
      });
      started.push(web);

      // web → exact works over mTLS once both have certificates.
      const deadline = Date.now() + 30_000;
      let first = { status: 0, body: '' };
      while (Date.now() < deadline) {
        first = await get(web.addr.outbound.port, 'exact');
        if (first.body === 'exact') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(first.body, 'exact', `web reaches exact: ${JSON.stringify(first)}`);

      // A mesh-less instance that reached the store anyway (registered before the policy, or
      // written past the API): passing, on the rogue server.
      const now = new Date().toISOString();
      const lease = await t.store.grantLease(600_000);
      await t.store.put(
        KEYS.instance('default', 'exact', 'rogue-1'),
        JSON.stringify({
          id: 'rogue-1',
          service: 'exact',
          namespace: 'default',
          address: '127.0.0.1',
          port: rogue.port,
          labels: {},
          checks: [],
          status: 'passing',
          registeredAt: now,
          statusChangedAt: now,
          lease,
        }),
        { lease },
      );
      // Let the change reach web's sidecar (a delta), then call 40 times.
      await new Promise((r) => setTimeout(r, 1000));
      const bodies: string[] = [];
      for (let i = 0; i < 40; i++) bodies.push((await get(web.addr.outbound.port, 'exact')).body);
      assert.equal(rogueHits, 0, 'the rogue server got no request');
      assert.deepEqual(new Set(bodies), new Set(['exact']), 'every call went to the real exact over mTLS');
      const eps = (await (
        await fetch(`http://127.0.0.1:${web.addr.admin.port}/endpoints`)
      ).json()) as unknown;
      assert.ok(!JSON.stringify(eps).includes(`:${rogue.port}`), 'web does not even know the rogue endpoint');
    } finally {
      for (const p of started.reverse()) await p.close();
      await rogue.close();
      await exactApp.close();
      await t.close();
    }
  },
);

test('issue 10: a sidecar never picks a mesh-less endpoint of a STRICT destination, even when sent one', async () => {
  let rogueHits = 0;
  const rogue = await startHttpServer((_req, res) => {
    rogueHits++;
    res.end('rogue');
  });
  const good = await startHttpServer((_req, res) => res.end('good'));
  const endpoints = [
    { address: '127.0.0.1', port: rogue.port, meshed: false },
    { address: '127.0.0.1', port: good.port, meshed: true },
  ];
  const strict = await startProxy({
    proxy: { service: 'web' },
    services: [{ name: 'exact', mtls: 'STRICT', endpoints }],
  });
  // The same endpoints without the mode: the rogue one is picked (the test can fail).
  const permissive = await startProxy({
    proxy: { service: 'web' },
    services: [{ name: 'exact', endpoints }],
  });
  try {
    const bodies = new Set<string>();
    for (let i = 0; i < 40; i++) bodies.add((await get(strict.addr.outbound.port, 'exact')).body);
    assert.deepEqual(bodies, new Set(['good']));
    assert.equal(rogueHits, 0);
    for (let i = 0; i < 10; i++) await get(permissive.addr.outbound.port, 'exact');
    assert.ok(rogueHits > 0, 'without STRICT the mesh-less endpoint takes traffic');
  } finally {
    await strict.close();
    await permissive.close();
    await rogue.close();
    await good.close();
  }
});
