/**
 * CPU time and resident memory of a process, read from /proc (Linux only). CPU time is
 * utime + stime of every thread, the figure bench.md asks for.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** Kernel clock ticks per second (USER_HZ), usually 100. */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of `pid` in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name, field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** Resident set size of `pid` in KiB (VmRSS). */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = status.split('\n').find((l) => l.startsWith('VmRSS:'));
  if (!line) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(line.split(/\s+/)[1]);
}

/**
 * Private memory of `pid` in KiB (USS: Private_Clean + Private_Dirty of smaps_rollup): what
 * the process costs beyond the pages it shares, e.g. Node's binary with other sidecars.
 */
export function ussKiB(pid: number): number {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? 0);
  return field('Private_Clean') + field('Private_Dirty');
}

/** Machine-wide CPU ticks from /proc/stat: total and steal, to record how noisy a run was. */
export function machineTicks(): { total: number; steal: number } {
  const first = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const nums = first.trim().split(/\s+/).slice(1).map(Number);
  return { total: nums.reduce((a, b) => a + b, 0), steal: nums[7] ?? 0 };
}
