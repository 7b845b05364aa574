/** The real CLI against a real `hexmesh control` with auth enforced: credentials file by default, HEXMESH_TOKEN overrides. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '../../bin/hexmesh.js');

function run(
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...process.env, HEXMESH_CONTROL: '', HEXMESH_TOKEN: '', HEXMESH_CREDENTIALS: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test(
  'CLI: the credentials file is used by default, HEXMESH_TOKEN overrides it, auth tokens',
  { timeout: 120_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hexmesh-auth-cli-'));
    const home = join(dir, 'home');
    const data = join(dir, 'data');
    const cp = spawn(process.execPath, [BIN, 'control', '--listen', '127.0.0.1:0', '--data-dir', data], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    cp.stdout.on('data', (d) => (out += d));
    try {
      const deadline = Date.now() + 30_000;
      while (!/listening on http/.test(out) && Date.now() < deadline && cp.exitCode === null)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(out, /admin credentials written to .*credentials\.json/);
      await mkdir(join(home, '.hexmesh'), { recursive: true });
      await copyFile(join(data, 'credentials.json'), join(home, '.hexmesh', 'credentials'));
      const env = { HOME: home };

      // No --control, no token flags: URL and token come from ~/.hexmesh/credentials.
      const put = await run(['kv', 'put', 'app/x', 'hello'], env, dir);
      assert.equal(put.code, 0, put.stderr);
      const viewer = await run(['auth', 'token', 'create', 'dashboards', '--role', 'viewer'], env, dir);
      assert.equal(viewer.code, 0, viewer.stderr);
      const viewerToken = viewer.stdout.trim();
      assert.match(viewerToken, /^hxat\./);

      const denied = await run(['kv', 'put', 'app/y', 'no'], { ...env, HEXMESH_TOKEN: viewerToken }, dir);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /role viewer lacks permission kv:write/);
      assert.ok(!denied.stderr.includes(viewerToken.split('.')[2]), 'no secret in the error');

      const list = await run(['auth', 'token', 'list'], env, dir);
      assert.match(list.stdout, /bootstrap-admin\s+admin/);
      assert.match(list.stdout, /dashboards\s+viewer/);
      const admin = JSON.parse(await readFile(join(data, 'credentials.json'), 'utf8')).contexts[0]
        .token as string;
      assert.ok(
        !list.stdout.includes(admin.split('.')[2]) && !list.stdout.includes(viewerToken.split('.')[2]),
      );

      // Without any credentials file: 401.
      const anon = await run(
        ['kv', 'get', 'app/x', '--control', out.match(/listening on (\S+)/)![1]],
        { HOME: join(dir, 'nohome') },
        dir,
      );
      assert.notEqual(anon.code, 0);
      assert.match(anon.stderr, /requires authentication/);

      const id = viewerToken.split('.')[1];
      assert.equal((await run(['auth', 'token', 'revoke', id], env, dir)).code, 0);
      const revoked = await run(['kv', 'ls', 'app/'], { ...env, HEXMESH_TOKEN: viewerToken }, dir);
      assert.match(revoked.stderr, /unknown or revoked token/);
    } finally {
      cp.kill('SIGTERM');
      await new Promise((r) => cp.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    }
  },
);
