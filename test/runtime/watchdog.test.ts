/**
 * The watchdog (src/runtime/watchdog.ts) on its own: a supervisor SIGKILLed takes down every
 * process group it named, grandchildren included (what an app forks), and the watchdog exits.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const OWNER = join(import.meta.dirname, 'fixtures', 'watchdog-owner.ts');

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test('a SIGKILLed supervisor takes every named process group down with it, grandchildren included', async (t) => {
  const owner = spawn(process.execPath, ['--import', 'tsx', OWNER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const seen: number[] = [];
  t.after(() => {
    owner.kill('SIGKILL');
    for (const p of seen)
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
  });
  const info = await new Promise<{ watchdog: number; sh: number; children: number[] }>((resolve, reject) => {
    let out = '';
    owner.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line));
    });
    owner.once('exit', (code) => reject(new Error(`owner exited (${code}) before printing its pids`)));
  });
  const all = [info.watchdog, info.sh, ...info.children];
  seen.push(...all);
  for (const p of all) assert.ok(running(p), `pid ${p} runs before the kill`);
  owner.kill('SIGKILL');
  const deadline = Date.now() + 15_000;
  while (all.some(running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(all.filter(running), [], 'the shell, both sleeps it forked, and the watchdog are gone');
});
