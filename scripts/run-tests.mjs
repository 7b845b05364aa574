#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node:test through tsx.
// Usage: npm test [-- <substring filter>]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = walk('src', walk('test', [])).filter(
  (f) => filters.length === 0 || filters.some((x) => f.includes(x)),
);
files.sort();

// --test-timeout bounds a whole file (node:test runs each in a process of its own). These take
// minutes by design — an npm install of the packed tarball (better-sqlite3 may compile), three
// hosts with etcd — so they run after the rest, one at a time, with a longer bound.
// Also the crash tests that SIGKILL and restart control planes and whole meshes.
const SLOW = [
  'test/install/',
  'test/multihost/',
  'test/runtime/supervisor-crash.test.ts',
  'test/rollout/crash-safety.test.ts',
  'test/runtime/sidecar-cache.test.ts',
];
const isSlow = (f) => SLOW.some((d) => f.split('\\').join('/').startsWith(d));

function run(list, timeoutMs, concurrency) {
  if (list.length === 0) return 0;
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      `--test-concurrency=${concurrency}`,
      `--test-timeout=${timeoutMs}`,
      ...list,
    ],
    { stdio: 'inherit' },
  );
  return r.status ?? 1;
}
// 5 minutes per file: a file of several mesh-sized tests (test/rollout/rollout.test.ts, the
// Kubernetes rollout tests) takes 1-2 minutes alone and timed out at 2 on a loaded machine; a
// hung file still ends at the bound.
const fast = run(
  files.filter((f) => !isSlow(f)),
  300_000,
  2,
);
const slow = run(files.filter(isSlow), 1_800_000, 1);
process.exit(fast || slow);
