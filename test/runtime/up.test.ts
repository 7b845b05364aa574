/**
 * `hexmesh up` end to end, through the real CLI: the shop from the repo (every service
 * healthy, a request through web reaches catalog, cart, reviews and ratings over gRPC, `ps`,
 * `down` leaves no process behind), a bad mesh file (exit 3, every problem), a crash-looping
 * command (CrashLoop, bounded restarts), and `hexmesh await` (waits, runs the job, its sidecar exits).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN, ROOT, runCli } from '../support/cli.ts';
import type { MeshState } from '../../src/runtime/mesh-runner.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function pidsOf(st: MeshState): number[] {
  const out = [st.supervisorPid];
  if (st.controlPid) out.push(st.controlPid);
  for (const i of st.instances) for (const p of [i.appPid, i.sidecarPid]) if (p) out.push(p);
  return out;
}

function killAll(pids: Iterable<number>): void {
  for (const p of pids)
    try {
      process.kill(-p, 'SIGKILL');
    } catch {
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
    }
}

async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function readState(dir: string): MeshState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as MeshState;
  } catch {
    return undefined;
  }
}

test('hexmesh up -d on the shop: healthy, web reaches every backend, ps lists it, down leaves nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-shop-'));
  const seen = new Set<number>();
  t.after(async () => {
    await runCli(['down', '--data-dir', dir, '--timeout', '20'], 40_000);
    killAll(seen);
    rmSync(dir, { recursive: true, force: true });
  });
  const mesh = join(ROOT, 'examples', 'shop', 'mesh.yaml');
  const up = await runCli(
    ['up', '-f', mesh, '-d', '--data-dir', dir, '--control-listen', '127.0.0.1:0', '--timeout', '90s'],
    150_000,
  );
  const st0 = readState(dir);
  if (st0) for (const p of pidsOf(st0)) seen.add(p);
  assert.equal(up.code, 0, `stdout: ${up.stdout}\nstderr: ${up.stderr}`);
  assert.match(up.stdout, /6\/6 instances passing/);

  const ps = await runCli(['ps', '--data-dir', dir, '-o', 'json']);
  const st = JSON.parse(ps.stdout) as MeshState;
  for (const p of pidsOf(st)) seen.add(p);
  assert.deepEqual(st.instances.map((i) => i.id).sort(), [
    'cart-1',
    'catalog-1',
    'ratings-1',
    'reviews-v1-1',
    'reviews-v2-1',
    'web-1',
  ]);
  for (const i of st.instances) {
    assert.equal(i.health, 'passing', `${i.id}: ${i.health} ${i.healthOutput ?? ''}`);
    assert.equal(i.state, 'running');
    assert.ok(i.appPid && i.sidecarPid, `${i.id} has both processes`);
  }
  const table = await runCli(['ps', '--data-dir', dir]);
  assert.match(table.stdout, /SERVICE\s+INSTANCE\s+VERSION\s+STATE\s+HEALTH/);
  assert.match(table.stdout, /reviews\s+reviews-v2-1\s+v2\s+running\s+passing/);

  const web = st.instances.find((i) => i.service === 'web')!;
  // -d prints what a foreground run prints: the public URLs and where the admin token is.
  assert.ok(up.stdout.includes(`web: http://127.0.0.1:${web.appPort}/`), up.stdout);
  assert.ok(up.stdout.includes(`API credentials (admin): ${join(dir, 'credentials.json')}`), up.stdout);
  const r = await fetch(`http://127.0.0.1:${web.appPort}/api/backends`);
  assert.deepEqual(await r.json(), { catalog: true, cart: true, reviews: 'v2', ratings: true });
  // Each sidecar joined with a join token for its own identity and got a workload
  // certificate: every hop between sidecars (HTTP and gRPC) is mutual TLS.
  const scrape = async (id: string) => {
    const i = st.instances.find((x) => x.id === id)!;
    return (await fetch(`http://127.0.0.1:${i.adminPort}/metrics`)).text();
  };
  const webMetrics = await scrape('web-1');
  for (const dst of ['catalog', 'cart', 'reviews'])
    assert.match(
      webMetrics,
      new RegExp(
        `hexmesh_requests_total\\{direction="outbound",src_service="web",dst_service="${dst}",[^}]*tls="true"\\} [1-9]`,
      ),
      `web → ${dst} not over mTLS`,
    );
  assert.match(
    await scrape('reviews-v2-1'),
    /hexmesh_requests_total\{direction="outbound",src_service="reviews",dst_service="ratings",[^}]*grpc_status="0",tls="true"\} [1-9]/,
  );
  const certs = await runCli([
    'identity',
    'certificates',
    '--control',
    st.controlUrl,
    '--credentials',
    join(dir, 'credentials.json'),
  ]);
  assert.equal(certs.code, 0, certs.stderr);
  assert.match(certs.stdout, /reviews-v2-1\s+spiffe:\/\/hexmesh\.local\/ns\/default\/sa\/reviews\s/);
  // Join tokens go through the environment, never argv (readable by every user via ps).
  for (const i of st.instances) {
    const cmdline = `/proc/${i.sidecarPid}/cmdline`;
    if (existsSync(cmdline)) assert.doesNotMatch(readFileSync(cmdline, 'utf8'), /hx[aj]t\./, i.id);
  }
  const page = await (await fetch(`http://127.0.0.1:${web.appPort}/`)).text();
  assert.match(page, /Hex key set/);
  assert.match(page, /reviews v1/);

  const logs = await runCli(['logs', 'web', '--data-dir', dir]);
  assert.match(logs.stdout, /\[web-1\] web v1 listening/);

  const down = await runCli(['down', '--data-dir', dir], 60_000);
  assert.equal(down.code, 0, down.stderr);
  const left = await until('every process to exit', 10_000, () => {
    const l = [...seen].filter(alive);
    return l.length === 0 ? l : undefined;
  }).catch(() => [...seen].filter(alive));
  assert.deepEqual(left, [], 'processes left behind after down');
  assert.equal(readState(dir), undefined, 'state.json removed');
});

test('a mesh file with errors is refused with every problem listed (exit 3)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-bad-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'mesh.yaml');
  writeFileSync(
    file,
    `services:
  - name: Web
    command: ''
    healthCheck: { type: smoke }
    colour: blue
resources:
  - { apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: { name: r }, spec: {} }
include: [missing.yaml]
`,
  );
  const r = await runCli(['up', '-f', file, '--once']);
  assert.equal(r.code, 3, r.stderr);
  for (const path of [
    'services[0].name',
    'services[0].command',
    'services[0].healthCheck',
    'services[0]: unknown field "colour"',
    'resources[0].spec.parentRefs',
    'include[0]',
  ])
    assert.ok(r.stderr.includes(path), `${path} not reported:\n${r.stderr}`);
  assert.match(r.stderr, /\(6 problems\)/);
});

test('a command that crash-loops is reported as CrashLoop and restarted with bounded backoff', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-crash-'));
  const file = join(dir, 'mesh.yaml');
  writeFileSync(
    file,
    `controlPlane: { listen: '127.0.0.1:0' }
services:
  - name: crasher
    command: node
    args: [-e, "console.log('starting'); process.exit(3)"]
    restart: { initialBackoff: 100ms, maxBackoff: 1s }
`,
  );
  const up = spawn(process.execPath, [BIN, 'up', '-f', file], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  up.stdout.on('data', (d: Buffer) => (out += d));
  up.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => up.once('exit', (c) => r(c)));
  const seen = new Set<number>([up.pid!]);
  t.after(() => {
    killAll(seen);
    rmSync(dir, { recursive: true, force: true });
  });
  const hexDir = join(dir, '.hexmesh');
  const st = await until('CrashLoop in state.json', 30_000, () => {
    const s = readState(hexDir);
    if (s) for (const p of pidsOf(s)) seen.add(p);
    return s?.instances[0]?.state === 'CrashLoop' ? s : undefined;
  });
  const first = st.instances[0].restarts;
  const firstAt = Date.now();
  assert.ok(first >= 5, `CrashLoop after ${first} restarts`);
  const ps = await runCli(['ps', '--data-dir', hexDir]);
  assert.match(ps.stdout, /crasher-1\s+-\s+CrashLoop/);
  // At full speed a command that exits at once restarts dozens of times in 3 s; capped, at most ~3.
  await new Promise((r) => setTimeout(r, 3000));
  const later = readState(hexDir)!;
  // The window is measured: the `ps` above may itself take seconds on a loaded machine.
  const elapsed = Date.now() - firstAt;
  for (const p of pidsOf(later)) seen.add(p);
  // Each restart in a crash loop waits the full maxBackoff (1 s): at most one per second, plus one due.
  const allowed = Math.ceil(elapsed / 1000) + 1;
  assert.ok(
    later.instances[0].restarts - first <= allowed,
    `${later.instances[0].restarts - first} restarts in ${elapsed} ms while crash-looping (at most ${allowed})`,
  );
  assert.match(readFileSync(join(hexDir, 'logs', 'crasher-1.log'), 'utf8'), /\[CrashLoop\]/);
  up.kill('SIGINT');
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
  assert.equal(code, 0, out);
  await until('every process to exit', 10_000, () => ([...seen].some(alive) ? undefined : true));
});

test('hexmesh await waits for the sidecar, runs the job, exits with its code and ends the sidecar', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-await-'));
  const procs: ReturnType<typeof spawn>[] = [];
  t.after(() => {
    for (const p of procs) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const start = (args: string[]) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d));
    return { p, out: () => out, exited: new Promise<number | null>((r) => p.once('exit', (c) => r(c))) };
  };
  const cp = start(['control', '--listen', '127.0.0.1:0', '--data-dir', dir]);
  const url = await until('control plane', 20_000, () => /listening on (http:\/\/\S+)/.exec(cp.out())?.[1]);
  const { freePort } = await import('../../src/runtime/ports.ts');
  const admin = await freePort();
  // The job starts before its sidecar: await must hold it until /ready.
  const env = { HEXMESH_ADMIN: `127.0.0.1:${admin}` };
  const jobP = spawn(
    process.execPath,
    [
      BIN,
      'await',
      '--timeout',
      '30s',
      '--',
      process.execPath,
      '-e',
      "console.log('job ran'); process.exit(7)",
    ],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  procs.push(jobP);
  let jobOut = '';
  jobP.stdout.on('data', (d: Buffer) => (jobOut += d));
  const jobExit = new Promise<number | null>((r) => jobP.once('exit', (c) => r(c)));
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(jobOut, '', 'the job ran before its sidecar was ready');
  // Auth is enforced: the sidecar joins with a join token made with the bootstrap admin credentials.
  const tok = await runCli([
    'identity',
    'token',
    'create',
    '--namespace',
    'default',
    '--service-account',
    'job',
    '--ttl',
    '10m',
    '--control',
    url,
    '--credentials',
    join(dir, 'credentials.json'),
  ]);
  assert.equal(tok.code, 0, tok.stderr);
  const sidecar = start([
    'proxy',
    '--control',
    url,
    '--join-token',
    tok.stdout.trim(),
    '--service',
    'job',
    '--app-port',
    '1',
    '--admin',
    `127.0.0.1:${admin}`,
    '--inbound',
    '127.0.0.1:0',
    '--outbound',
    '127.0.0.1:0',
  ]);
  const code = await Promise.race([jobExit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 40_000))]);
  assert.equal(code, 7);
  assert.match(jobOut, /job ran/);
  const sc = await Promise.race([
    sidecar.exited,
    new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000)),
  ]);
  assert.notEqual(sc, 'hung', 'the sidecar did not exit after the job');
  cp.p.kill('SIGTERM');
  await cp.exited;
});
