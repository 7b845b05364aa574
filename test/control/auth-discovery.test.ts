/**
 * End to end with auth enforced: a controlled proxy authenticates its discovery stream with
 * its join token, and an AuthorizationPolicy DENY applied through the REST API (operator
 * token) is enforced by that proxy's inbound within a second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startControlledProxy } from '../../src/proxy/control-client/controlled-proxy.ts';
import { startHttpServer } from '../support/mesh.ts';
import { call, startCp } from './helpers.ts';

const any = { address: '127.0.0.1', port: 0 };

test(
  'a DENY AuthorizationPolicy applied via REST is enforced by the controlled proxy within a second',
  { timeout: 60_000 },
  async () => {
    const t = await startCp({ auth: { mode: 'enforce' }, identity: {}, discovery: true });
    const app = await startHttpServer((_req, res) => res.end('hello'));
    const operator = (await t.cp.tokens.create({ name: 'ops', role: 'operator' })).token;
    const join = (await t.cp.identity.tokens.create('default', 'web', 60_000)).token;
    const proxy = await startControlledProxy({
      control: [t.url],
      settings: { service: 'web', inbound: any, outbound: any, admin: any, app: { port: app.port } },
      identity: { joinToken: join },
      client: { backoff: { initial: 50, max: 500 }, log: () => {} },
    });
    try {
      const inbound = `http://127.0.0.1:${proxy.addr.inbound.port}`;
      const deadline = Date.now() + 15_000;
      let first = 0;
      while (Date.now() < deadline) {
        first = await fetch(`${inbound}/admin`).then(
          (r) => r.status,
          () => 0,
        );
        if (first === 200) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(first, 200, 'the proxy got its config through an authenticated stream');

      const policy = {
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'no-admin', namespace: 'default' },
        spec: {
          targetRef: { kind: 'Service', name: 'web' },
          action: 'DENY',
          rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }],
        },
      };
      const denied = await call(t.url, 'PUT', '/v1/resources/AuthorizationPolicy/default/no-admin', policy);
      assert.equal(denied.status, 401, 'writes need a token');
      const applied = Date.now();
      const put = await call(t.url, 'PUT', '/v1/resources/AuthorizationPolicy/default/no-admin', policy, {
        authorization: `Bearer ${operator}`,
      });
      assert.ok(put.status === 201 || put.status === 200, JSON.stringify(put.body));
      let status = 0;
      let header: string | null = null;
      while (Date.now() - applied < 5_000) {
        const r = await fetch(`${inbound}/admin`);
        status = r.status;
        header = r.headers.get('x-hexmesh-error');
        await r.text();
        if (status === 403) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const took = Date.now() - applied;
      assert.equal(status, 403);
      assert.equal(header, 'denied');
      // A second on a quiet machine; generous for a loaded CI box.
      assert.ok(took < 3_000, `enforced after ${took} ms`);
      assert.equal((await fetch(`${inbound}/public`)).status, 200, 'other paths still pass');
    } finally {
      await proxy.close();
      await app.close();
      await t.close();
    }
  },
);
