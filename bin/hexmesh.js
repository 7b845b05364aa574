#!/usr/bin/env node
// Entry point.
//
// Installed from the npm package (no src/ beside this file): runs dist/release/hexmesh.mjs, the
// bundle `npm pack` built (scripts/pack-release.mjs), and nothing else: no TypeScript loader,
// no bundler, no writes into the install directory.
//
// In a clone: runs the esbuild bundle dist/hexmesh.mjs (plain JavaScript: no TypeScript loader
// in the proxy process), rebuilding it first when any file under src/ is newer (~100 ms). When
// the bundle cannot be written (a read-only checkout), runs the sources through tsx instead.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const RELEASE = new URL('../dist/release/hexmesh.mjs', import.meta.url);

if (!existsSync(SRC)) {
  await import(RELEASE.href);
} else {
  const { BUNDLE, buildBundle, bundleIsFresh } = await import('../scripts/bundle.mjs');
  let bundled = bundleIsFresh();
  if (!bundled) {
    try {
      await buildBundle();
      bundled = true;
    } catch (err) {
      const reason = String(err?.message ?? err).split('\n')[0];
      process.stderr.write(`hexmesh: cannot build ${BUNDLE} (${reason}); running the sources through tsx\n`);
    }
  }
  if (bundled) {
    // The bundle is not minified, so its stack traces read as they are. For src/ file names and
    // lines run `node --enable-source-maps bin/hexmesh.js`: not the default, because Node parses
    // the map at load and keeps it (~10 MiB RSS in every proxy).
    await import(pathToFileURL(BUNDLE).href);
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    await import('../src/cli/main.ts');
  }
}
