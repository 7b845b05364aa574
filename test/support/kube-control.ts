/**
 * `hexmesh control --kubernetes` (the real command) against a test cluster's kubeconfig, with
 * its own data directory, listening on an ephemeral port with auth off. Its output is kept so
 * a test can wait for a line; `stop()` asks it to exit (SIGTERM) and `close()` cleans up.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT } from './cli.ts';
import { until } from '../control/discovery-support.ts';

export interface KubeControl {
  /** Wait (up to `ms`) for a stdout line matching `re`; resolves to its first capture group. */
  line(re: RegExp, ms: number, what: string): Promise<string>;
  /** stdout so far. */
  readonly out: string;
  /** stderr so far. */
  readonly err: string;
  /** SIGTERM; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (if still running) and remove the data directory. Idempotent. */
  close(): void;
}

export function spawnKubeControl(
  kubeconfig: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): KubeControl {
  const data = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-cli-'));
  const child = spawn(
    process.execPath,
    [
      BIN,
      'control',
      '--kubernetes',
      '--kubeconfig',
      kubeconfig,
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      data,
      '--auth',
      'off',
      ...extraArgs,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    async line(re, ms, what) {
      try {
        return await until(() => re.exec(out)?.[1], ms, what);
      } catch (e) {
        throw new Error(`${(e as Error).message} (stderr: ${err})`, { cause: e });
      }
    },
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    stop() {
      child.kill('SIGTERM');
      return exited;
    },
    close() {
      child.kill('SIGKILL');
      rmSync(data, { recursive: true, force: true });
    },
  };
}
