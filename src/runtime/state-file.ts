/** Reading a mesh's `state.json` and pid file (written by MeshRunner) from other processes: ps, down, logs. */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { MeshState } from './mesh-runner.ts';
import { isRunning, isSameProcess, signalGroup, type ProcessStamp } from './processes.ts';
import { meshPaths } from './paths.ts';

/** The state file, or undefined when no mesh was started from this data dir (or it was stopped cleanly). */
export function readMeshState(dataDir: string): MeshState | undefined {
  try {
    return JSON.parse(readFileSync(meshPaths(dataDir).stateFile, 'utf8')) as MeshState;
  } catch {
    return undefined;
  }
}

/** The pid file: the supervisor's pid and, from the line after it, its ProcessStamp. */
export function readSupervisorPid(
  dataDir: string,
): { pid: number; stamp: ProcessStamp | undefined } | undefined {
  try {
    const [first, second] = readFileSync(meshPaths(dataDir).pidFile, 'utf8').split('\n');
    const pid = Number(first.trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    let stamp: ProcessStamp | undefined;
    try {
      stamp = second?.trim() ? (JSON.parse(second) as ProcessStamp) : undefined;
    } catch {}
    return { pid, stamp };
  } catch {
    return undefined;
  }
}

/**
 * The supervisor's pid when it is still alive and still the process that wrote the pid
 * file (same start time and boot): a stale pid file may name a pid reused by anything.
 */
export function liveSupervisor(dataDir: string): number | undefined {
  const rec = readSupervisorPid(dataDir);
  return rec && isSameProcess(rec.pid, rec.stamp) ? rec.pid : undefined;
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

/**
 * SIGKILL (the whole process group) every process `st` names that is still the process the
 * mesh started (same start time and boot): the control plane, each app and sidecar, and the
 * watchdog. A pid that now belongs to another process is left alone and reported in
 * `skipped`. `down` uses it for stragglers, `up` for what a killed supervisor left behind.
 */
export function killRecorded(st: MeshState): { killed: number[]; skipped: string[] } {
  const named: { what: string; pid: number | undefined; stamp: ProcessStamp | undefined }[] = [
    { what: 'control plane', pid: st.controlPid, stamp: st.controlStamp },
  ];
  for (const i of st.instances ?? [])
    named.push(
      { what: `app of ${i.id}`, pid: i.appPid, stamp: i.appStamp },
      { what: `sidecar of ${i.id}`, pid: i.sidecarPid, stamp: i.sidecarStamp },
    );
  if (st.watchdogPid) named.push({ what: 'watchdog', pid: st.watchdogPid, stamp: st.watchdogStamp });
  const killed: number[] = [];
  const skipped: string[] = [];
  const seen = new Set<number>();
  for (const { what, pid, stamp } of named) {
    if (!pid || seen.has(pid) || !isRunning(pid)) continue;
    seen.add(pid);
    if (!isSameProcess(pid, stamp)) {
      skipped.push(`${what} pid ${pid}`);
      continue;
    }
    signalGroup(pid, 'SIGKILL');
    killed.push(pid);
  }
  return { killed, skipped };
}
