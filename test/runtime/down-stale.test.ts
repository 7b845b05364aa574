/**
 * `hexmesh down` signals only the processes the mesh started: a pid named in a stale
 * state.json / pid file that now belongs to another process is left alone and reported.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { isAlive, processStamp, type ProcessStamp } from '../../src/runtime/processes.ts';
import { meshPaths } from '../../src/runtime/paths.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/hexmesh.js');

function sleeper(t: { after(fn: () => unknown): void }): ChildProcess & { pid: number } {
  // Its own process group, as the runtime's children: down would signal the whole group.
  const p = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  t.after(() => {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {}
  });
  return p as ChildProcess & { pid: number };
}

function dataDirWith(
  t: { after(fn: () => unknown): void },
  pid: number,
  stamp: ProcessStamp | undefined,
): string {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-down-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(dir, { recursive: true });
  const paths = meshPaths(dir);
  const inst = {
    id: 'web-1',
    service: 'web',
    namespace: 'default',
    state: 'running',
    health: 'passing',
    appPort: 1,
    inboundPort: 2,
    outboundPort: 3,
    adminPort: 4,
    appPid: pid,
    sidecarPid: undefined,
    ...(stamp ? { appStamp: stamp } : {}),
    restarts: 0,
    startedAt: Date.now(),
    logFile: join(dir, 'web-1.log'),
  };
  const state = {
    file: join(dir, 'mesh.yaml'),
    phase: 'running',
    supervisorPid: pid,
    controlUrl: 'http://127.0.0.1:1',
    controlPid: pid,
    ...(stamp ? { controlStamp: stamp, supervisorStamp: stamp } : {}),
    startedAt: Date.now(),
    updatedAt: Date.now(),
    instances: [inst],
  };
  writeFileSync(paths.stateFile, JSON.stringify(state));
  writeFileSync(paths.pidFile, `${pid}\n${stamp ? JSON.stringify(stamp) : ''}\n`);
  return dir;
}

function down(dir: string): Promise<{ code: number; stdout: string }> {
  return new Promise((r) =>
    execFile(
      process.execPath,
      [BIN, 'down', '--data-dir', dir, '--timeout', '5'],
      { cwd: ROOT },
      (err, stdout) => r({ code: err ? Number(err.code ?? 1) : 0, stdout }),
    ),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('down leaves alone a live process whose pid a stale state file names (other start time)', async (t) => {
  const other = sleeper(t);
  const real = processStamp(other.pid);
  assert.ok(real, 'this system has /proc');
  // The mesh's process had this pid once, in another life: a different start time.
  const stale = { ...real, startTime: String(Number(real.startTime) - 1000) };
  const dir = dataDirWith(t, other.pid, stale);
  const r = await down(dir);
  assert.equal(r.code, 0, r.stdout);
  await sleep(200);
  assert.ok(isAlive(other.pid), 'the unrelated process is still running');
  assert.match(r.stdout, /left alone .*stale entr/);
  assert.match(r.stdout, new RegExp(`supervisor pid ${other.pid}`));
});

test('down leaves alone a pid recorded in another boot, and one with no stamp at all', async (t) => {
  const other = sleeper(t);
  const real = processStamp(other.pid)!;
  for (const stamp of [{ ...real, bootId: '00000000-0000-0000-0000-000000000000' }, undefined]) {
    const r = await down(dataDirWith(t, other.pid, stamp));
    assert.equal(r.code, 0, r.stdout);
    await sleep(200);
    assert.ok(isAlive(other.pid), `still running (stamp ${JSON.stringify(stamp)})`);
    assert.match(r.stdout, /left alone/);
  }
});

test('down still kills a straggler that is the process the mesh started', async (t) => {
  const mine = sleeper(t);
  const exited = new Promise((r) => mine.once('exit', r));
  // Named as the app only (the pid file names no live supervisor), with its true stamp.
  const dir = dataDirWith(t, mine.pid, processStamp(mine.pid));
  writeFileSync(meshPaths(dir).pidFile, '');
  const r = await down(dir);
  assert.equal(r.code, 0, r.stdout);
  await Promise.race([exited, sleep(5000)]);
  assert.equal(isAlive(mine.pid), false, 'killed');
  assert.match(r.stdout, /1 process killed/);
  assert.doesNotMatch(r.stdout, /left alone/);
});
