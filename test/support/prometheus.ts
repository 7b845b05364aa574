/** Test support: a real Prometheus (Debian `prometheus`) on a free loopback port, torn down after. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
export { freePort } from '../../src/runtime/ports.ts';
import { freePort } from '../../src/runtime/ports.ts';

export const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;

export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Throws with the tail of Prometheus' log if it has exited (call it inside wait loops). */
  assertRunning(): void;
  /** SIGTERM (SIGKILL after 5 s), wait for the exit, remove the data directory. */
  close(): Promise<void>;
}

/** Start Prometheus with `config` (YAML text, or an object written as JSON, which is YAML). */
export async function startPrometheus(config: string | object): Promise<RunningPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'hexmesh-prom-'));
  const port = await freePort();
  await writeFile(join(dir, 'prometheus.yml'), typeof config === 'string' ? config : JSON.stringify(config));
  const prom = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  prom.stderr.on('data', (d) => (log = (log + d).slice(-4000)));
  const exited = new Promise((r) => prom.once('exit', r));
  return {
    url: `http://127.0.0.1:${port}`,
    assertRunning() {
      if (prom.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
    },
    async close() {
      prom.kill('SIGTERM');
      const killer = setTimeout(() => prom.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
