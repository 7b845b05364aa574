import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

const BIN = join(import.meta.dirname, '../../bin/hexmesh.js');

test(
  'hexmesh control prints its address, serves the API, and stops gracefully on SIGTERM',
  { timeout: 60_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hexmesh-cli-cp-'));
    const child = spawn(
      process.execPath,
      [BIN, 'control', '--listen', '127.0.0.1:0', '--data-dir', dir, '--deregister-critical-after', '1m'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = once(child, 'exit');
    try {
      const deadline = Date.now() + 30_000;
      let m: RegExpMatchArray | null = null;
      while (!(m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) && Date.now() < deadline) {
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(m, `no listen line; stdout=${out} stderr=${err}`);
      const health = (await (await fetch(`${m[1]}/v1/health`)).json()) as {
        status: string;
        store: { kind: string };
      };
      assert.equal(health.status, 'ok');
      assert.equal(health.store.kind, 'embedded');
      // Auth is enforced: without credentials 401; the admin token written on first start works.
      assert.equal((await fetch(`${m[1]}/v1/kv/persisted`, { method: 'PUT', body: 'yes' })).status, 401);
      const creds = JSON.parse(await readFile(join(dir, 'credentials.json'), 'utf8'));
      assert.equal((await stat(join(dir, 'credentials.json'))).mode & 0o777, 0o600);
      assert.equal(creds.contexts[0].control, m[1]);
      assert.ok(!out.includes(creds.contexts[0].token), 'the token is never printed');
      const put = await fetch(`${m[1]}/v1/kv/persisted`, {
        method: 'PUT',
        body: 'yes',
        headers: { authorization: `Bearer ${creds.contexts[0].token}` },
      });
      assert.equal(put.status, 200);
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, err);
      assert.match(out, /stopped/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test('hexmesh control refuses a bad flag with a usage error naming it', { timeout: 30_000 }, async () => {
  const child = spawn(process.execPath, [BIN, 'control', '--listen', 'nonsense'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const [code] = await once(child, 'exit');
  assert.equal(code, 2);
  assert.match(err, /--listen.*expected host:port/);
});
