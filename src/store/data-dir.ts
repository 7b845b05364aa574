/**
 * The control plane's data directory holds secrets: the embedded store (API token hashes,
 * the sealed CA key, every resource), the admin credentials file, the CA's key files and the
 * seal key. It is the owner's alone: the directory 0700, those files 0600. Checked at start
 * (`hexmesh control` fixes a loose mode with a warning and refuses what another user owns)
 * and by `hexmesh check --data-dir`.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { HexmeshError } from '../errors/hexmesh-error.ts';

/** Files directly in the data dir that hold secrets (those present are checked). */
const SECRET_FILES = [
  'hexmesh.db',
  'hexmesh.db-wal',
  'hexmesh.db-shm',
  'hexmesh.db-journal',
  'credentials.json',
  'ca-seal.key',
];

export interface DataDirFinding {
  readonly path: string;
  /** `loose`: group or others may read it; `foreign`: another user owns it. */
  readonly problem: 'loose' | 'foreign';
  /** Permission bits found (e.g. 0o644). */
  readonly mode: number;
  /** What it should be: 0o700 for directories, 0o600 for files. */
  readonly want: number;
  readonly uid: number;
}

export const octal = (mode: number): string => `0${(mode & 0o777).toString(8)}`;

/** Every secret-holding path of `dir` that exists: the directory, its secret files, `ca/` and its keys. */
function secretPaths(dir: string): { path: string; st: Stats }[] {
  const out: { path: string; st: Stats }[] = [];
  const add = (path: string) => {
    try {
      out.push({ path, st: lstatSync(path) });
    } catch {
      // absent: nothing to check
    }
  };
  add(dir);
  for (const f of SECRET_FILES) add(join(dir, f));
  const ca = join(dir, 'ca');
  if (existsSync(ca)) {
    add(ca);
    for (const id of safeReaddir(ca)) {
      const sub = join(ca, id);
      add(sub);
      for (const f of safeReaddir(sub)) if (f.endsWith('.key')) add(join(sub, f));
    }
  }
  return out;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** What is wrong with the data dir's permissions (empty: nothing, or no such directory). */
export function inspectDataDir(dir: string): DataDirFinding[] {
  const uid = process.getuid?.();
  const out: DataDirFinding[] = [];
  for (const { path, st } of secretPaths(dir)) {
    if (st.isSymbolicLink()) continue;
    const want = st.isDirectory() ? 0o700 : 0o600;
    const mode = st.mode & 0o777;
    if (uid !== undefined && st.uid !== uid) out.push({ path, problem: 'foreign', mode, want, uid: st.uid });
    else if ((mode & 0o077) !== 0) out.push({ path, problem: 'loose', mode, want, uid: st.uid });
  }
  return out;
}

/**
 * Make sure the data dir is ours alone before anything is read or written there: created
 * 0700 when missing; a loose mode is fixed (`warn` says what was changed); a path another
 * user owns is refused (we cannot know who else read or replaced it).
 */
export function secureDataDir(dir: string, warn: (line: string) => void): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const findings = inspectDataDir(dir);
  const foreign = findings.filter((f) => f.problem === 'foreign');
  if (foreign.length)
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      `data dir ${dir}: ${foreign.map((f) => `${f.path} is owned by uid ${f.uid}`).join(', ')}, not by this user (uid ${process.getuid?.()}); ` +
        'it holds the store and the CA key: chown it to the user running the control plane, or use another --data-dir',
    );
  for (const f of findings) {
    chmodSync(f.path, f.want);
    warn(
      `${f.path} was mode ${octal(f.mode)} (readable by other users); set to ${octal(f.want)}: it holds secrets`,
    );
  }
}
