/**
 * `--control-ca` / HEXMESH_CONTROL_CA: the real CLI talks to a `--tls` control plane by
 * trusting its CA bundle, and refuses it (a TLS error, exit 1) without one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ControlPlane } from '../../src/control/control-plane.ts';
import { tempDir } from '../identity/helpers.ts';
import { tempStore } from '../control/helpers.ts';
import { hexmesh } from './control-support.ts';

test('services over HTTPS: trusted with --control-ca or HEXMESH_CONTROL_CA, refused without', async () => {
  const { store, close: closeStore } = await tempStore();
  const dir = await tempDir();
  const cp = new ControlPlane({
    listen: { address: '127.0.0.1', port: 0 },
    store,
    auth: { mode: 'enforce' },
    identity: {},
    discovery: true,
    tls: { fromCa: true },
  });
  try {
    const { port } = await cp.start();
    const url = `https://127.0.0.1:${port}`;
    const bundle = join(dir.dir, 'ca-bundle.pem');
    await writeFile(bundle, (await cp.identity.bundle()).pem);
    const token = (await cp.tokens.create({ name: 'cli', role: 'admin' })).token;
    const env = { HEXMESH_TOKEN: token, HEXMESH_CONTROL_CA: '', NODE_EXTRA_CA_CERTS: '' };

    const ok = await hexmesh(['services', '--control', url, '--control-ca', bundle], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /No services registered/);

    const viaEnv = await hexmesh(['services', '--control', url, '-o', 'json'], {
      env: { ...env, HEXMESH_CONTROL_CA: bundle },
    });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.ok(Array.isArray(JSON.parse(viaEnv.stdout)));

    const refused = await hexmesh(['services', '--control', url], { env });
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /hexmesh services: cannot reach control plane at https:\/\/127\.0\.0\.1:\d+: .*(certificate|self.signed)/i,
    );

    const missing = await hexmesh(['services', '--control', url, '--control-ca', join(dir.dir, 'nope.pem')], {
      env,
    });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read --control-ca .*nope\.pem: ENOENT/);
  } finally {
    await cp.close();
    await closeStore();
    await dir.close();
  }
});
