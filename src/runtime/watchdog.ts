/**
 * Instances die with their supervisor. Node cannot set PR_SET_PDEATHSIG on a child, and
 * that signal would reach only the direct child anyway, not what an app forks (`npm start`
 * → node). So `hexmesh up` starts one small watchdog process, in its own process group
 * (a terminal's Ctrl-C or hang-up does not reach it), whose stdin is a pipe only the
 * supervisor holds the write end of (libuv opens it close-on-exec: no app inherits it).
 * The supervisor names the process group of every child it spawns (`+<pgid> <starttime>`)
 * and of every one it reaped (`-<pgid>`). When the supervisor dies, however it dies
 * (SIGKILL and the OOM killer included), the kernel closes its end; the watchdog reads EOF,
 * sends SIGTERM to every group still named, SIGKILL after a grace period, and exits. A
 * clean stop has reaped every group before it closes the pipe, so the watchdog exits with
 * nothing to do. A group whose leader now has another start time is a reused pid: skipped.
 *
 * Why not `setsid` + a pipe per child: every app would have to watch the pipe itself. Why
 * not a watchdog per child: one process per instance for what one process does for all.
 * A watchdog killed on its own is started again and told every group (the supervisor sees
 * its exit); a child spawned in the instant before the supervisor dies, before it was
 * named, is what `up`'s reaping of the previous state file is for (mesh-runner.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ProcessStamp } from './processes.ts';

/** The watchdog itself: plain JavaScript for `node -e`, so it runs the same from src/ and from the bundle. */
const SOURCE = `
const fs = require('node:fs');
process.title = 'hexmesh watchdog';
const grace = Number(process.argv[1]) || 3000;
const groups = new Map();
const startTime = (pid) => {
  try {
    const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
};
const signal = (sig) => {
  for (const [pid, st] of groups) {
    const now = startTime(pid);
    if (now !== undefined && st && now !== st) {
      groups.delete(pid);
      continue;
    }
    try { process.kill(-pid, sig); } catch { try { process.kill(pid, sig); } catch {} }
  }
};
let reaping = false;
const reap = () => {
  if (reaping) return;
  reaping = true;
  if (groups.size === 0) process.exit(0);
  signal('SIGTERM');
  setTimeout(() => { signal('SIGKILL'); process.exit(0); }, grace);
};
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\\n'); i >= 0; i = buf.indexOf('\\n')) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const op = line[0];
    const [pid, st] = line.slice(1).split(' ');
    if (op === '+') groups.set(Number(pid), st);
    else if (op === '-') groups.delete(Number(pid));
  }
});
process.stdin.on('end', reap);
process.stdin.on('error', reap);
`;

export class Watchdog {
  readonly #graceMs: number;
  readonly #groups = new Map<number, string>();
  #child: ChildProcess | undefined;
  #closed = false;

  /** Start the watchdog; `graceMs` between its SIGTERM and SIGKILL (default 3 s). */
  constructor(o: { graceMs?: number } = {}) {
    this.#graceMs = o.graceMs ?? 3000;
    this.#spawn();
  }

  /** The watchdog's pid (state.json records it). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  #spawn(): void {
    const c = spawn(process.execPath, ['-e', SOURCE, String(this.#graceMs)], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    this.#child = c;
    // Neither the process nor the pipe keeps the supervisor's event loop alive.
    c.unref();
    c.stdin!.on('error', () => {});
    (c.stdin as unknown as { unref(): void }).unref();
    c.on('error', () => {});
    for (const [pid, st] of this.#groups) c.stdin!.write(`+${pid} ${st}\n`);
    c.once('exit', () => {
      if (this.#closed) return;
      // Killed on its own: start another (not in a tight loop) and tell it every group.
      setTimeout(() => this.#closed || this.#spawn(), 1000).unref();
    });
  }

  /** A child was spawned in its own process group (its pid is the group's id). */
  watch(pid: number, stamp: ProcessStamp | undefined): void {
    if (this.#closed) return;
    const st = stamp?.startTime ?? '';
    this.#groups.set(pid, st);
    this.#child?.stdin?.write(`+${pid} ${st}\n`);
  }

  /** The child exited and was reaped. */
  unwatch(pid: number): void {
    if (!this.#groups.delete(pid)) return;
    this.#child?.stdin?.write(`-${pid}\n`);
  }

  /** Close the pipe: the watchdog kills what is still named (nothing, after a clean stop) and exits. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#child?.stdin?.end();
  }
}
