import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { workloadCertificate } from '../../identity/static-identity-source.ts';
import { TestCa } from '../../../test/support/pki.ts';
import { LastGoodCache } from './last-good-cache.ts';

test('the cache dir is 0700 (a looser one is tightened), its files 0600, no temp file left', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'hexmesh-cache-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'web-1');
  const lines: string[] = [];
  new LastGoodCache(dir, { log: (l) => lines.push(l) });
  chmodSync(dir, 0o755);
  const cache = new LastGoodCache(dir, { log: (l) => lines.push(l) });
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.match(lines.join('\n'), /was mode 755; now 0700/);
  const ca = await TestCa.create();
  const issued = await ca.issue(ca.id('default', 'web'));
  await cache.saveIdentity(workloadCertificate(issued.certChainPem, issued.keyPem), ca.rootPem);
  await cache.saveConfig({ version: 7, services: [], resources: [], subscriptions: ['api.default'] });
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'identity.json']);
  for (const f of readdirSync(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  assert.equal(cache.loadConfig()?.version, 7);
  assert.equal(cache.loadIdentity()?.cert.spiffeId, ca.id('default', 'web'));
});

test('a cached certificate past its notAfter is refused with a log line naming its expiry', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-cache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await TestCa.create();
  const issued = await ca.issue(ca.id('default', 'web'));
  const cert = workloadCertificate(issued.certChainPem, issued.keyPem);
  await new LastGoodCache(dir).saveIdentity(cert, ca.rootPem);
  const lines: string[] = [];
  const later = new LastGoodCache(dir, { log: (l) => lines.push(l), now: () => cert.notAfter.getTime() + 1 });
  assert.equal(later.loadIdentity(), undefined);
  assert.match(
    lines.join('\n'),
    new RegExp(
      `certificate for ${ca.id('default', 'web')} expired at ${cert.notAfter.toISOString()}; not used`,
    ),
  );
});
