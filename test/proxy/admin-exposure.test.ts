/**
 * Who can reach a sidecar's admin listener, and what its config dump gives away: it binds
 * loopback unless told otherwise (a peer on another host, or this host's network address,
 * is refused), and `/config` serves the configuration in force with credentials redacted
 * (a route's `Authorization` header, a cookie match): any process on the host may read
 * the dump, the app included, which is not meant to hold the credential its sidecar adds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseProxyConfig } from '../../src/config/load.ts';
import { startProxy } from '../support/mesh.ts';

test("the admin listener binds loopback by default; this host's network address is refused", async () => {
  const byDefault = parseProxyConfig({ proxy: { service: 'web' } }).proxy.admin;
  assert.deepEqual(byDefault, { address: '127.0.0.1', port: 4191 });
  const p = await startProxy({ proxy: { service: 'web', admin: { address: byDefault.address, port: 0 } } });
  try {
    const port = Number(new URL(p.adminUrl).port);
    const connect = (host: string) =>
      new Promise<string>((resolve) => {
        const s = net.connect(port, host, () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
    assert.equal(await connect('127.0.0.1'), 'connected');
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal);
    if (external) assert.equal(await connect(external.address), 'ECONNREFUSED', external.address);
  } finally {
    await p.close();
  }
});

test('/config redacts credentials the config carries, keeps the rest', async () => {
  const p = await startProxy({
    proxy: { service: 'client' },
    services: [
      {
        name: 'api',
        ports: [{ port: 80, protocol: 'http' }],
        endpoints: [{ address: '127.0.0.1', port: 9 }],
      },
    ],
    resources: [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'api' },
        spec: {
          parentRefs: [{ kind: 'Service', name: 'api' }],
          rules: [
            {
              matches: [{ headers: [{ name: 'Cookie', value: 'session=c00kie-secret' }] }],
              filters: [
                {
                  type: 'RequestHeaderModifier',
                  requestHeaderModifier: {
                    set: [
                      { name: 'Authorization', value: 'Bearer upstream-s3cr3t' },
                      { name: 'X-Api-Key', value: 'k-123-secret' },
                      { name: 'x-env', value: 'prod' },
                    ],
                  },
                },
              ],
              backendRefs: [{ name: 'api' }],
            },
          ],
        },
      },
    ],
  });
  try {
    const res = await fetch(`${p.adminUrl}/config`);
    assert.equal(res.status, 200);
    const text = await res.text();
    for (const secret of ['upstream-s3cr3t', 'k-123-secret', 'c00kie-secret'])
      assert.ok(!text.includes(secret), `${secret} in /config`);
    const set = (
      JSON.parse(text) as {
        resources: {
          spec: {
            rules: { filters: { requestHeaderModifier: { set: { name: string; value: string }[] } }[] }[];
          };
        }[];
      }
    ).resources[0].spec.rules[0].filters[0].requestHeaderModifier.set;
    assert.deepEqual(set, [
      { name: 'Authorization', value: '<redacted>' },
      { name: 'X-Api-Key', value: '<redacted>' },
      { name: 'x-env', value: 'prod' },
    ]);
  } finally {
    await p.close();
  }
});
