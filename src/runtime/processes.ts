/**
 * Child processes the runtime owns: spawned in their own process group (so a signal
 * reaches an app's own children, e.g. behind `npm start`), output split into lines, and
 * stopped with SIGTERM then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Watchdog } from './watchdog.ts';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  /** Who `pid` is, taken at spawn: `hexmesh down` signals the pid only while it still matches. */
  readonly stamp: ProcessStamp | undefined;
  readonly exited: Promise<Exit>;
  /** True once the process has exited. */
  done(): boolean;
}

/**
 * Spawn `command args` in its own process group; every complete output line goes to
 * `onLine`. With a watchdog, the group is killed when this process dies (watchdog.ts).
 */
export function spawnLines(
  command: string,
  args: readonly string[],
  opts: Pick<SpawnOptions, 'cwd' | 'env'> & { watchdog?: Watchdog | undefined },
  onLine: (line: string, stream: 'stdout' | 'stderr') => void,
): Spawned {
  const { watchdog, ...spawnOpts } = opts;
  const child = spawn(command, [...args], {
    ...spawnOpts,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let finished = false;
  const exited = new Promise<Exit>((resolve) => {
    // 'error' (ENOENT, EACCES) comes instead of 'exit' when the program cannot start.
    child.once('error', () => {
      finished = true;
      resolve({ code: 127, signal: null });
    });
    child.once('exit', (code, signal) => {
      finished = true;
      resolve({ code, signal });
    });
  });
  for (const stream of ['stdout', 'stderr'] as const) {
    let partial = '';
    const s = child[stream]!;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      const parts = (partial + d).split('\n');
      partial = parts.pop()!;
      for (const l of parts) onLine(l, stream);
    });
    s.on('end', () => {
      if (partial) onLine(partial, stream);
      partial = '';
    });
  }
  // Read at once: the child exists from the fork on, and its pid cannot be reused before we reap it.
  const stamp = child.pid ? processStamp(child.pid) : undefined;
  const pid = child.pid;
  if (watchdog && pid) {
    watchdog.watch(pid, stamp);
    void exited.then(() => watchdog.unwatch(pid));
  }
  return { child, pid: child.pid, stamp, exited, done: () => finished };
}

/** Signal a process group (falls back to the process itself). Ignores processes already gone. */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {}
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL the group and wait for the exit. */
export async function terminate(p: Spawned, graceMs: number): Promise<Exit> {
  if (p.done()) return p.exited;
  signalGroup(p.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), graceMs)));
  const first = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  if (first === 'late') signalGroup(p.pid, 'SIGKILL');
  const exit = await p.exited;
  // The group may hold children the leader left behind.
  signalGroup(p.pid, 'SIGKILL');
  return exit;
}

export { isAlive, isRunning } from '../util/process-state.ts';

/**
 * What makes a pid one particular process: its start time (field 22 of /proc/<pid>/stat,
 * clock ticks since boot) and the boot it started in. A pid is reused after the process
 * exits or after a reboot; the pair is not.
 */
export interface ProcessStamp {
  startTime: string;
  bootId: string;
}

let bootIdCache: string | undefined;

function bootId(): string | undefined {
  try {
    bootIdCache ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {}
  return bootIdCache;
}

/** The stamp of a live process, or undefined (gone, or no /proc on this system). */
export function processStamp(pid: number): ProcessStamp | undefined {
  const boot = bootId();
  if (!boot || !(pid > 0)) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last ')'.
  // The rest starts at field 3 (state); field 22 (starttime) is the 20th of it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTime = fields[19];
  return startTime ? { startTime, bootId: boot } : undefined;
}

/**
 * Is `pid` still the process `stamp` recorded? False when it exited, when the pid now
 * belongs to another process (reused, or after a reboot), or when there is no stamp to check.
 */
export function isSameProcess(pid: number, stamp: ProcessStamp | undefined): boolean {
  if (!stamp) return false;
  const now = processStamp(pid);
  return now !== undefined && now.startTime === stamp.startTime && now.bootId === stamp.bootId;
}
