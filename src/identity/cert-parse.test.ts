import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '..', '..');

test('a sidecar with static certificates does not load @peculiar/x509 (issue 11: ~13 MiB RSS)', () => {
  const script = `
    import { createRequire } from 'node:module';
    await import('./src/identity/static-identity-source.ts');
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify(loaded.filter((k) => k.includes('@peculiar') || k.includes('tsyringe'))));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.deepEqual(JSON.parse(out.trim().split('\n').pop()!), []);
});
