/**
 * What `hexmesh version` prints. The release build (`npm pack`, scripts/pack-release.mjs)
 * embeds the version and the git commit it was built from; in a clone they are read from
 * package.json and `git` when asked.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../runtime/paths.ts';

// Replaced by esbuild's `define` in the release bundle; undeclared (typeof → 'undefined') elsewhere.
declare const __HEXMESH_VERSION__: string | undefined;
declare const __HEXMESH_COMMIT__: string | undefined;

export interface BuildInfo {
  version: string;
  /** Full commit hash, `unknown` outside a git checkout; `-dirty` when built with local changes. */
  commit: string;
  /** `release` (the packed bundle) or `checkout` (running from a clone). */
  build: 'release' | 'checkout';
}

/** The package version: embedded in the release bundle, else package.json's. */
export function hexmeshVersion(): string {
  if (typeof __HEXMESH_VERSION__ === 'string') return __HEXMESH_VERSION__;
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** Version and commit (runs `git` in a clone: for `hexmesh version` only, not at start-up). */
export function buildInfo(): BuildInfo {
  if (typeof __HEXMESH_COMMIT__ === 'string')
    return { version: hexmeshVersion(), commit: __HEXMESH_COMMIT__, build: 'release' };
  return { version: hexmeshVersion(), commit: gitCommit(ROOT), build: 'checkout' };
}

/** `git rev-parse HEAD` of `dir`, `-dirty` appended when tracked files changed; `unknown` without git. */
export function gitCommit(dir: string): string {
  const git = (...args: string[]): string =>
    execFileSync('git', ['-C', dir, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  try {
    const head = git('rev-parse', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}
