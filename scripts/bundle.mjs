#!/usr/bin/env node
// The production build: src/cli/main.ts bundled by esbuild into dist/hexmesh.mjs, so proxy
// processes run plain JavaScript instead of carrying the tsx loader (~120 MiB RSS, slower
// start). Packages stay external (node_modules is resolved at run time as before).
//
//   npm run build              build now
//   bin/hexmesh.js             builds on the fly when dist/ is older than src/ (see there)
//
// Writes are atomic (temp file + rename), so processes starting side by side (tests spawn many
// CLIs at once) never import a half-written bundle.
import { mkdirSync, readdirSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SRC = join(ROOT, 'src');
export const BUNDLE = join(ROOT, 'dist', 'hexmesh.mjs');

/** Newest mtime (ms) of any file under `dir`; -1 when the folder does not exist. */
function newestMtime(dir) {
  let newest = -1;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return -1;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    const t = e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs;
    if (t > newest) newest = t;
  }
  return newest;
}

/**
 * True when the bundle exists and is at least as new as every file under src/ (or there is
 * no src/ to build from). A stat walk of a few hundred files: a few milliseconds.
 */
export function bundleIsFresh() {
  let built;
  try {
    built = statSync(BUNDLE).mtimeMs;
  } catch {
    return false;
  }
  return built >= newestMtime(SRC);
}

/**
 * npm packages compiled into the bundle (see bundleOptions): what a sidecar process loads.
 * `@opentelemetry/api` keeps its state in a global shared by every copy, so the tracing SDK
 * (external, loaded only when tracing is on) works with the bundled one.
 */
export const BUNDLED_PACKAGES = ['prom-client', 'tdigest', 'bintrees', 'commander', '@opentelemetry/api'];

/** An esbuild plugin: every bare import is external except those of `bundled` packages. */
function externalExcept(bundled) {
  const inside = (path) => bundled.some((name) => path === name || path.startsWith(`${name}/`));
  return {
    name: 'external-except',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith('node:') || inside(args.path)) return undefined;
        return { path: args.path, external: true };
      });
    },
  };
}

/**
 * esbuild options of the CLI bundle, written to `outdir` (also used by the release build,
 * scripts/pack-release.mjs).
 */
export function bundleOptions(outdir) {
  return {
    entryPoints: { hexmesh: join(SRC, 'cli', 'main.ts') },
    outdir,
    outExtension: { '.js': '.mjs' },
    // Dynamic imports become chunks loaded on demand, so a command's heavy dependencies (the
    // control plane's store clients, say) stay out of processes that never run it, the proxy's
    // above all. Chunk names carry a content hash: writing one is idempotent.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Packages stay external, save the few pure-JavaScript ones every sidecar loads: bundled,
    // the proxy loads no CommonJS at all, which saves its first require() (the CommonJS loader
    // and compile cache, ~5 MiB RSS per process; issue 11's memory targets). The banner gives
    // their require() of Node's own modules a `require` to call.
    plugins: [externalExcept(BUNDLED_PACKAGES)],
    banner: {
      js: "import { createRequire as __hexmeshRequire } from 'node:module'; const require = __hexmeshRequire(import.meta.url);",
    },
    // Whitespace and syntax minified, names kept (profiles and stack traces stay readable; the
    // linked source map maps them back): the sidecar keeps its modules' source text in its
    // heap for as long as it runs, so a smaller text is private memory saved per process.
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'linked',
    sourcesContent: false,
    write: false,
    logLevel: 'silent',
  };
}

/** Build dist/hexmesh.mjs (and its source map). Throws when esbuild or the write fails. */
export async function buildBundle() {
  // Stamp the output with the time the build started: a source edited during the build is then
  // newer than the bundle, and the next start rebuilds.
  const started = Date.now() / 1000;
  const { build } = await import('esbuild');
  const result = await build(bundleOptions(dirname(BUNDLE)));
  const suffix = `.${process.pid}.tmp`;
  // Chunks first, then maps, the entry last: a process that sees the new entry finds every
  // file it imports.
  const rank = (p) => (p === BUNDLE ? 2 : p.endsWith('.map') ? 1 : 0);
  const files = [...result.outputFiles].sort((a, b) => rank(a.path) - rank(b.path));
  for (const f of files) {
    mkdirSync(dirname(f.path), { recursive: true });
    const tmp = join(dirname(f.path), basename(f.path) + suffix);
    writeFileSync(tmp, f.contents);
    utimesSync(tmp, started, started);
    renameSync(tmp, f.path);
  }
  removeOldChunks(new Set(files.map((f) => f.path)));
}

/** Chunks of earlier builds, once no process can still be starting from them (an hour on). */
function removeOldChunks(keep) {
  const dir = join(dirname(BUNDLE), 'chunks');
  const cutoff = Date.now() - 3_600_000;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    try {
      if (!keep.has(p) && statSync(p).mtimeMs < cutoff) unlinkSync(p);
    } catch {
      // Another build removed it first.
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = Date.now();
  await buildBundle();
  console.log(`built ${BUNDLE} in ${Date.now() - t0} ms`);
}
