#!/usr/bin/env node
// The web dashboard's build: dashboard/src (React + TypeScript) bundled by esbuild into
// dashboard/dist/ — everything in it, no request leaves the control plane (works offline).
//
//   npm run build:dashboard    build now (also run by `npm ci` through `prepare`)
//   control plane              builds on the first /ui request when dist/ is missing or older
//                              than dashboard/ (src/control/dashboard/dashboard-build.ts)
//   npm run dashboard:watch    rebuild on every save (docs/dashboard.md)
//
// Asset names carry a content hash (served as immutable); index.html, written last and
// atomically, names the current ones, so a page load never sees a half-written build.
import {
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DASHBOARD = join(ROOT, 'dashboard');
export const DIST = join(DASHBOARD, 'dist');
const INDEX = join(DIST, 'index.html');
/**
 * What the build reads from the project besides node_modules: the modules of src/ whose code
 * the bundle takes are listed one by one (a type-only import leaves nothing in it).
 */
const INPUTS = [
  join(DASHBOARD, 'src'),
  join(DASHBOARD, 'index.html'),
  join(ROOT, 'src', 'telemetry', 'tap', 'grpc-status.ts'),
  fileURLToPath(import.meta.url),
];

function newestMtime(p) {
  let st;
  try {
    st = statSync(p);
  } catch {
    return -1;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(p)) newest = Math.max(newest, newestMtime(join(p, name)));
  return newest;
}

/** True when dist/index.html exists and is at least as new as every input. A few ms. */
export function dashboardIsFresh() {
  let built;
  try {
    built = statSync(INDEX).mtimeMs;
  } catch {
    return false;
  }
  return INPUTS.every((p) => built >= newestMtime(p));
}

/** esbuild options shared by the build and watch mode. */
export function esbuildOptions() {
  return {
    entryPoints: { app: join(DASHBOARD, 'src', 'main.tsx') },
    outdir: join(DIST, 'assets'),
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    jsx: 'automatic',
    minify: true,
    sourcemap: 'linked',
    sourcesContent: true,
    legalComments: 'linked',
    define: { 'process.env.NODE_ENV': '"production"' },
    metafile: true,
    logLevel: 'silent',
  };
}

/**
 * Build dashboard/dist/. Returns `{files: [{path, bytes, gzipBytes}]}` (paths relative to
 * dist/). Throws when esbuild fails (a syntax error in dashboard/src, say).
 */
export async function buildDashboard() {
  // Stamp index.html with the build's start: a source saved during the build is newer, and the
  // next check rebuilds.
  const started = Date.now() / 1000;
  const { build } = await import('esbuild');
  const result = await build({ ...esbuildOptions(), write: false });
  const suffix = `.${process.pid}.tmp`;
  const writeAtomic = (path, contents) => {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = join(dirname(path), basename(path) + suffix);
    writeFileSync(tmp, contents);
    utimesSync(tmp, started, started);
    renameSync(tmp, path);
  };
  const files = [];
  const keep = new Set();
  const tags = [];
  for (const f of result.outputFiles) {
    const rel = relative(DIST, f.path).split('\\').join('/');
    writeAtomic(f.path, f.contents);
    keep.add(f.path);
    let gzipBytes;
    if (/\.(js|css|map|txt)$/.test(f.path)) {
      const gz = gzipSync(f.contents, { level: 9 });
      gzipBytes = gz.length;
      writeAtomic(`${f.path}.gz`, gz);
      keep.add(`${f.path}.gz`);
    }
    files.push({ path: rel, bytes: f.contents.length, gzipBytes });
    if (rel.endsWith('.js')) tags.push(`<script type="module" src="/ui/${rel}"></script>`);
    else if (rel.endsWith('.css')) tags.push(`<link rel="stylesheet" href="/ui/${rel}">`);
  }
  const template = readFileSync(join(DASHBOARD, 'index.html'), 'utf8');
  if (!template.includes('<!-- assets -->'))
    throw new Error('dashboard/index.html has no <!-- assets --> marker');
  const html = template.replace('<!-- assets -->', tags.sort().join('\n    '));
  writeAtomic(INDEX, html);
  files.push({ path: 'index.html', bytes: Buffer.byteLength(html) });
  removeOldAssets(keep);
  return { files };
}

/** Assets of earlier builds, once no page loaded from them can still ask (an hour on). */
function removeOldAssets(keep) {
  const dir = join(DIST, 'assets');
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

/** Rebuild on every change under dashboard/src (development). */
async function watch() {
  const { context } = await import('esbuild');
  let building = false;
  let again = false;
  const rebuild = async () => {
    if (building) {
      again = true;
      return;
    }
    building = true;
    try {
      const t0 = Date.now();
      await buildDashboard();
      console.log(`dashboard rebuilt in ${Date.now() - t0} ms`);
    } catch (err) {
      console.error(String(err?.message ?? err));
    } finally {
      building = false;
      if (again) {
        again = false;
        void rebuild();
      }
    }
  };
  // esbuild's watcher tells when an input changed; the write goes through buildDashboard so
  // index.html names the new hashes.
  const ctx = await context({
    ...esbuildOptions(),
    write: false,
    plugins: [{ name: 'rebuild', setup: (b) => b.onEnd(() => void rebuild()) }],
  });
  await ctx.watch();
  console.log('watching dashboard/src (Ctrl-C to stop)');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--watch')) await watch();
  else {
    const t0 = Date.now();
    const { files } = await buildDashboard();
    const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
    for (const f of files.filter((x) => !x.path.endsWith('.map') && !x.path.endsWith('.txt')))
      console.log(`  ${f.path}  ${kib(f.bytes)}${f.gzipBytes ? ` (gzip ${kib(f.gzipBytes)})` : ''}`);
    console.log(`built ${relative(process.cwd(), DIST) || DIST} in ${Date.now() - t0} ms`);
  }
}
