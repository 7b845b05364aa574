/** Where the checkout and its `bin/hexmesh.js` are (this file runs from src/ or from the dist/ bundle). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'bin', 'hexmesh.js'))) return dir;
    if (dirname(dir) === dir) return join(from, '..', '..');
  }
}

export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
/** The CLI entry point the runtime starts sidecars and the control plane with. */
export const HEXMESH_BIN = join(ROOT, 'bin', 'hexmesh.js');

/** The files a mesh keeps in its data dir. */
export function meshPaths(dataDir: string): {
  dataDir: string;
  logDir: string;
  stateFile: string;
  pidFile: string;
} {
  return {
    dataDir,
    logDir: join(dataDir, 'logs'),
    stateFile: join(dataDir, 'state.json'),
    pidFile: join(dataDir, 'supervisor.pid'),
  };
}
