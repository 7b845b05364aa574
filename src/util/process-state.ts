/**
 * Whether a pid still stands for a process that runs. Shared by the store's lock file and
 * the runtime: a process killed after its parent died waits as a zombie until init reaps it
 * — in some containers init never does — and a zombie holds no lock and serves nothing.
 */
import { readFileSync } from 'node:fs';

/** Is a process with this pid alive? (signal 0 probes without signalling; zombies count) */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Is `pid` running: alive and not a zombie. */
export function isRunning(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}
