/** Reading a mesh's `state.json` and pid file (written by MeshRunner) from other processes: ps, down, logs. */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { MeshState } from './mesh-runner.ts';
import { isAlive } from './processes.ts';
import { meshPaths } from './paths.ts';

/** The state file, or undefined when no mesh was started from this data dir (or it was stopped cleanly). */
export function readMeshState(dataDir: string): MeshState | undefined {
  try {
    return JSON.parse(readFileSync(meshPaths(dataDir).stateFile, 'utf8')) as MeshState;
  } catch {
    return undefined;
  }
}

/** The supervisor's pid when it is still alive. */
export function liveSupervisor(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(meshPaths(dataDir).pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The data dir a command works on: `--data-dir`, else the one of `-f FILE` (its
 * `controlPlane.dataDir`, default `.hexmesh` beside it), else `./mesh.yaml`'s, else `./.hexmesh`.
 */
export async function resolveDataDir(opts: { file?: string; dataDir?: string }): Promise<string> {
  if (opts.dataDir) return resolve(opts.dataDir);
  const file = opts.file ?? (existsSync('mesh.yaml') ? 'mesh.yaml' : undefined);
  if (!file) return resolve('.hexmesh');
  const { loadMeshFile } = await import('./mesh-file.ts');
  return (await loadMeshFile(file)).controlPlane.dataDir;
}
