/** `hexmesh diagnose proxy` (the real CLI): endpoints with their state, sync, and the config. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../support/cli.ts';
import { startViewsMesh } from './mesh-views-support.ts';
import { redact } from '../../src/control/api/proxies-diagnose.ts';

test(
  'diagnose proxy shows endpoints per destination, sync state and the effective config',
  { timeout: 60_000 },
  async (t) => {
    const m = await startViewsMesh();
    t.after(() => m.close());
    const r = await runCli(['diagnose', 'proxy', 'client-1', '-o', 'json', '--control', m.cp.url]);
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout);
    assert.equal(body.proxies.length, 1);
    const p = body.proxies[0];
    assert.equal(p.id, 'client-1');
    assert.equal(p.sync.inSync, true);
    assert.equal(p.sync.acked, p.sync.version);
    const ratings = p.endpoints.destinations.find((d: { service: string }) => d.service === 'ratings');
    assert.equal(ratings.endpoints.length, 2);
    for (const e of ratings.endpoints) {
      assert.equal(e.eligible, true);
      assert.equal(e.ejected, false);
      assert.equal(e.catalogHealthy, true);
    }
    assert.equal(ratings.circuit, 'none');
    assert.equal(p.config.proxy.service, 'client');
    assert.equal(p.config.version, p.endpoints.version);
    assert.deepEqual(p.errors, []);

    const table = await runCli(['diagnose', 'proxy', 'ratings', '--control', m.cp.url]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^PROXY ratings-1 /m);
    assert.match(table.stdout, /^PROXY ratings-2 /m);
    assert.match(table.stdout, /sync: in sync: acked version \d+, current \d+/);
    assert.match(
      table.stdout,
      /DESTINATION\s+ENDPOINT\s+HEALTH\s+EJECTED\s+ELIGIBLE\s+ACTIVE\s+CIRCUIT\s+EWMA/,
    );
    assert.match(table.stdout, /config:\n\s+apiVersion: hexmesh\.io\/v1alpha1/);

    const missing = await runCli(['diagnose', 'proxy', 'nobody', '--control', m.cp.url]);
    assert.equal(missing.code, 4, missing.stderr);
  },
);

test('redact hides secret-looking fields and PEM blocks, keeps the rest', () => {
  assert.deepEqual(
    redact({
      a: 1,
      token: 'x',
      nested: [{ clientSecret: 's', privateKeyPem: 'p', name: 'n' }],
      cert: '-----BEGIN CERTIFICATE-----',
      enabled: true,
      hashKey: 'h',
    }),
    {
      a: 1,
      token: '<redacted>',
      nested: [{ clientSecret: '<redacted>', privateKeyPem: '<redacted>', name: 'n' }],
      cert: '<redacted>',
      enabled: true,
      hashKey: 'h',
    },
  );
});
