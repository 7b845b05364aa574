/**
 * The npm package, as a user gets it (docs/install.md): `npm pack` in the checkout, then
 * `npm install -g <tarball> --prefix <temp>` on a clean prefix (dependencies from the npm
 * cache / registry, better-sqlite3 built there), and the installed `hexmesh` runs `version`,
 * `proxy` (a request through its outbound listener) and `up --once` (a one-service mesh with
 * the control plane) — plain JavaScript, no tsx or esbuild in the install, no file written
 * into the install directory.
 *
 * Slow (better-sqlite3 compiles from source when no prebuilt binary is reachable: minutes on a
 * loaded machine), so everything is one test with generous deadlines.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../support/cli.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without npm's own `npm_*` variables (set when run through `npm test`). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith('npm_')) env[k] = v;
  return { ...env, ...extra };
}

function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every file under `dir` with its size and mtime: what "nothing written" is checked against. */
function snapshot(dir: string, out = new Map<string, string>(), base = dir): Map<string, string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) snapshot(p, out, base);
    else {
      const st = statSync(p);
      out.set(relative(base, p), `${st.size}:${st.mtimeMs}`);
    }
  }
  return out;
}

async function waitFor(what: string, timeoutMs: number, fn: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test(
  'npm pack + npm install -g on a clean prefix: hexmesh version, proxy and up --once run from the package',
  { timeout: 1_200_000 },
  async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'hexmesh-install-'));
    const children: ChildProcess[] = [];
    t.after(() => {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
    });
    const t0 = Date.now();

    // 1. Pack (prepack builds dist/release/).
    const pack = await run('npm', ['pack', '--pack-destination', tmp], { cwd: ROOT, timeoutMs: 300_000 });
    assert.equal(pack.code, 0, `npm pack failed:\n${pack.stderr}`);
    const tarball = join(tmp, pack.stdout.trim().split('\n').pop()!);
    assert.match(tarball, /hexmesh-\d+\.\d+\.\d+\.tgz$/);
    const listing = await run('tar', ['tzf', tarball], { cwd: tmp, timeoutMs: 30_000 });
    const files = listing.stdout.trim().split('\n');
    for (const want of [
      'package/bin/hexmesh.js',
      'package/dist/release/hexmesh.mjs',
      'package/dist/release/dashboard/index.html',
      'package/deploy/systemd/hexmesh-control.service',
      'package/deploy/systemd/hexmesh-sidecar.service',
      'package/deploy/systemd/hexmesh.sysusers',
    ])
      assert.ok(files.includes(want), `${want} not in the package:\n${files.join('\n')}`);
    const unwanted = files.filter((f) =>
      /^package\/(src|test|scripts|bench|dashboard)\/|\.ts$|\.map$/.test(f),
    );
    assert.deepEqual(unwanted, [], 'tests, sources or maps in the package');
    const packMs = Date.now() - t0;

    // 2. Install into a clean prefix. Global installs take no allowScripts from any package.json:
    //    the two install scripts are allowed on the command line, as docs/install.md says.
    const prefix = join(tmp, 'prefix');
    const install = await run(
      'npm',
      [
        'install',
        '-g',
        tarball,
        '--prefix',
        prefix,
        '--allow-scripts=better-sqlite3,protobufjs,koffi',
        '--no-audit',
        '--no-fund',
      ],
      { cwd: tmp, timeoutMs: 1_000_000 },
    );
    assert.equal(install.code, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
    assert.doesNotMatch(install.stderr, /npm warn/i, 'the install printed warnings');
    const installMs = Date.now() - t0 - packMs;
    const pkgDir = join(prefix, 'lib', 'node_modules', 'hexmesh');
    for (const devOnly of ['tsx', 'esbuild', 'typescript', 'react'])
      assert.ok(!existsSync(join(pkgDir, 'node_modules', devOnly)), `${devOnly} installed with the package`);
    assert.ok(
      existsSync(join(pkgDir, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')),
    );
    const before = snapshot(pkgDir);

    const bin = join(prefix, 'bin', 'hexmesh');
    const work = join(tmp, 'work');
    mkdirSync(work);
    const env = cleanEnv({ PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/bin:/bin` });

    // 3. hexmesh version: the version and the commit embedded at pack time.
    const version = await run(bin, ['version'], { cwd: work, env, timeoutMs: 30_000 });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^hexmesh 0\.\d+\.\d+ \(commit [0-9a-f]{40}(-dirty)?, release build\)$/m);

    // ... and the systemd units come from the package's templates, running this installation.
    const units = await run(
      bin,
      ['install', '--systemd', 'control', '--print', '--', '--listen', '0.0.0.0:7070'],
      {
        cwd: work,
        env,
        timeoutMs: 30_000,
      },
    );
    assert.equal(units.code, 0, units.stderr);
    assert.ok(
      units.stdout.includes(
        `ExecStart=${process.execPath} ${join(pkgDir, 'bin', 'hexmesh.js')} control --listen 0.0.0.0:7070`,
      ),
      units.stdout,
    );

    // 4. hexmesh proxy with a static config: a request through its outbound listener reaches the app.
    const app = createServer((req, res) => res.end(`hello from the app, ${req.method} ${req.url}`));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    t.after(() => app.close());
    const appPort = (app.address() as AddressInfo).port;
    const proxyYaml = join(work, 'proxy.yaml');
    writeFileSync(
      proxyYaml,
      `proxy:
  service: client
  outbound: { address: 127.0.0.1, port: 0 }
  inbound: { address: 127.0.0.1, port: 0 }
  admin: { address: 127.0.0.1, port: 0 }
  app: { host: 127.0.0.1, port: ${appPort} }
services:
  - name: hello
    endpoints: [{ address: 127.0.0.1, port: ${appPort} }]
`,
    );
    const proxy = spawn(bin, ['proxy', '--config', proxyYaml], {
      cwd: work,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(proxy);
    let proxyOut = '';
    proxy.stdout.on('data', (d: Buffer) => (proxyOut += d));
    proxy.stderr.on('data', (d: Buffer) => (proxyOut += d));
    await waitFor(
      `the proxy's start line\n${proxyOut}`,
      60_000,
      () => /outbound=[^:\s]+:\d+/.test(proxyOut) || proxy.exitCode !== null,
    );
    const outbound = Number(/outbound=[^:\s]+:(\d+)/.exec(proxyOut)?.[1]);
    assert.ok(outbound > 0, `proxy did not start:\n${proxyOut}`);
    // node:http, not fetch: fetch does not let a caller set Host, which names the service.
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: outbound, path: '/greet', headers: { host: 'hello' } },
        (r) => {
          let body = '';
          r.setEncoding('utf8');
          r.on('data', (d: string) => (body += d));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.body, 'hello from the app, GET /greet');
    proxy.kill('SIGTERM');
    await waitFor(
      'the proxy to drain and exit',
      30_000,
      () => proxy.exitCode !== null || proxy.signalCode !== null,
    );

    // 5. hexmesh up --once: control plane (embedded SQLite store) + one app with its sidecar.
    writeFileSync(
      join(work, 'app.mjs'),
      `import { createServer, request } from 'node:http';
createServer((req, res) => res.end('ok ' + req.url)).listen(Number(process.env.PORT), '127.0.0.1');
`,
    );
    writeFileSync(
      join(work, 'mesh.yaml'),
      `controlPlane: { listen: '127.0.0.1:0' }
services:
  - name: hello
    command: node
    args: [app.mjs]
    healthCheck: { type: http, path: /health }
smokeTest: { service: hello, path: /smoke }
`,
    );
    const up = await run(bin, ['up', '-f', join(work, 'mesh.yaml'), '--once', '--timeout', '120s'], {
      cwd: work,
      env,
      timeoutMs: 240_000,
    });
    assert.equal(up.code, 0, `up --once failed:\nstdout: ${up.stdout}\nstderr: ${up.stderr}`);
    assert.ok(existsSync(join(work, '.hexmesh')), 'the data dir is beside the mesh file');

    // 6. Nothing was written into the install directory.
    const after = snapshot(pkgDir);
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
      (k) => before.get(k) !== after.get(k),
    );
    assert.deepEqual(changed, [], 'files written into the install directory');

    t.diagnostic(`pack ${packMs} ms, install ${installMs} ms, total ${Date.now() - t0} ms`);
  },
);
