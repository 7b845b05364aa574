#!/usr/bin/env node
// Entry point. Runs the esbuild bundle dist/hexmesh.mjs (plain JavaScript: no TypeScript loader
// in the proxy process), rebuilding it first when any file under src/ is newer (~100 ms). When
// the bundle cannot be written (a read-only checkout), runs the sources through tsx instead.
import { pathToFileURL } from 'node:url';
import { BUNDLE, buildBundle, bundleIsFresh } from '../scripts/bundle.mjs';

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
