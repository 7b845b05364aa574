/**
 * The embedded store's lock file: a live owner keeps others out; a dead owner's lock, or a
 * zombie's (a control plane killed after its supervisor died waits unreaped in containers
 * whose init never reaps), is taken over — else the next `hexmesh up` could never start.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LockFile } from '../../src/store/lock-file.ts';

test('a lock held by a zombie is taken over; one held by a live process is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // `sleep 0.3` runs in the background of a shell that then becomes `sleep 30`, which never
  // waits for it: it stays a zombie while its parent lives. (With `sleep 0` the shell itself
  // could reap it before its `exec`, and there was no process left to look at: ci24.)
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  t.after(() => parent.kill('SIGKILL'));
  const zombie = await new Promise<number>((resolve) =>
    parent.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
  );
  const deadline = Date.now() + 10_000;
  const state = () => {
    const s = readFileSync(`/proc/${zombie}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  };
  while (state() !== 'Z' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(state(), 'Z', 'the helper process is a zombie');

  const path = join(dir, 'hexmesh.db.lock');
  writeFileSync(path, `${parent.pid}\n`);
  assert.throws(() => LockFile.acquire(path, 'store'), /in use by process/);
  writeFileSync(path, `${zombie}\n`);
  const lock = LockFile.acquire(path, 'store');
  assert.equal(readFileSync(path, 'utf8').trim(), String(process.pid));
  lock.release();
});
