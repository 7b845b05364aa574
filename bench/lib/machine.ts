/** What the run happened on, recorded beside every result. */
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, release, totalmem } from 'node:os';

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memGiB: number;
  kernel: string;
  node: string;
  haproxy: string;
  wrk: string;
  openssl: string;
  hexmeshCommit: string;
}

function firstLine(cmd: string, args: readonly string[]): string {
  try {
    // wrk -v exits 1 after printing its version: take the output either way.
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 })
      .split('\n')[0]
      .trim();
  } catch (err) {
    const out =
      String((err as { stdout?: unknown }).stdout ?? '') + String((err as { stderr?: unknown }).stderr ?? '');
    return out.split('\n')[0].trim() || 'not found';
  }
}

export function machineInfo(): MachineInfo {
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    haproxy: firstLine('haproxy', ['-v']),
    wrk: firstLine('wrk', ['-v']),
    openssl: firstLine('openssl', ['version']),
    hexmeshCommit: firstLine('git', ['rev-parse', '--short', 'HEAD']),
  };
}
