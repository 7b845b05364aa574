#!/usr/bin/env node
// The npm package's build, run by `npm pack` / `npm publish` (the `prepack` script). Writes
// dist/release/, which package.json's `files` ships with bin/hexmesh.js:
//
//   dist/release/hexmesh.mjs, chunks/   the CLI bundle (scripts/bundle.mjs's options), with the
//                                       version and git commit embedded (`hexmesh version`)
//   dist/release/dashboard/             the built dashboard: index.html and the assets it names
//
// An installed package therefore runs plain JavaScript with its runtime dependencies only: no
// TypeScript loader, no bundler, nothing built or written in the install directory.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bundleOptions, ROOT } from './bundle.mjs';
import { buildDashboard, dashboardIsFresh, DIST as DASHBOARD_DIST } from './build-dashboard.mjs';

export const RELEASE = join(ROOT, 'dist', 'release');

/** HEAD's hash, `-dirty` when tracked files differ from it; `unknown` outside git. */
function gitCommit() {
  const git = (...args) =>
    execFileSync('git', ['-C', ROOT, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  try {
    const head = git('rev-parse', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') === '' ? head : `${head}-dirty`;
  } catch {
    return 'unknown';
  }
}

/** Build dist/release/ from scratch. Returns what was embedded. */
export async function buildRelease() {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const commit = process.env.HEXMESH_COMMIT || gitCommit();
  rmSync(RELEASE, { recursive: true, force: true });

  const { build } = await import('esbuild');
  await build({
    ...bundleOptions(RELEASE),
    // No source map: it would name src/ files the package does not ship.
    sourcemap: false,
    write: true,
    define: { __HEXMESH_VERSION__: JSON.stringify(version), __HEXMESH_COMMIT__: JSON.stringify(commit) },
  });

  // The dashboard: only the files the current index.html names (dashboard/dist may still hold
  // an hour of older assets for pages loaded before the last rebuild).
  if (!dashboardIsFresh()) await buildDashboard();
  const index = readFileSync(join(DASHBOARD_DIST, 'index.html'), 'utf8');
  const out = join(RELEASE, 'dashboard');
  mkdirSync(join(out, 'assets'), { recursive: true });
  writeFileSync(join(out, 'index.html'), index);
  for (const [, rel] of index.matchAll(/\/ui\/(assets\/[^"]+)"/g)) {
    for (const name of [rel, `${rel}.gz`, `${rel}.LEGAL.txt`, `${rel}.LEGAL.txt.gz`]) {
      const from = join(DASHBOARD_DIST, name);
      if (existsSync(from)) {
        mkdirSync(dirname(join(out, name)), { recursive: true });
        copyFileSync(from, join(out, name));
      }
    }
  }
  return { version, commit };
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const t0 = Date.now();
  const { version, commit } = await buildRelease();
  console.log(`built ${RELEASE} (hexmesh ${version}, commit ${commit}) in ${Date.now() - t0} ms`);
}
