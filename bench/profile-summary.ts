/**
 * Where a V8 CPU profile's busy time went: `--cpu-prof` output (one .cpuprofile per process,
 * e.g. from `HEXMESH_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" node --import tsx
 * bench/run.ts ...`) grouped by kind of code, by file and by function, as shares of the
 * process's busy samples (idle excluded), with the self time of each.
 *
 *   node --import tsx bench/profile-summary.ts DIR/*.cpuprofile [--top N] [--callers NAME]
 *
 * Groups: `hexmesh` (src/ and the bundle's own chunks), `node` (node:internal and node:*
 * modules), `package` (node_modules and bundled third-party code, by package name), and V8's
 * own `(program)` and `(garbage collector)` nodes. `--callers NAME` lists, for every function
 * whose name contains NAME, the self time it accrued under each calling function.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Share {
  key: string;
  micros: number;
  share: number;
}

export interface Summary {
  busyMicros: number;
  idleMicros: number;
  groups: Share[];
  files: Share[];
  functions: Share[];
}

/** The package a bundled or installed file belongs to, or undefined for our own code. */
function packageOf(url: string): string | undefined {
  const i = url.lastIndexOf('node_modules/');
  if (i < 0) return undefined;
  const rest = url.slice(i + 'node_modules/'.length).split('/');
  return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
}

export function groupOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'gc';
    if (functionName === '(program)') return 'program';
    if (functionName === '(idle)') return 'idle';
    return 'native';
  }
  if (url.startsWith('node:')) return 'node';
  const pkg = packageOf(url);
  if (pkg) return `package ${pkg}`;
  return 'hexmesh';
}

function shortUrl(url: string): string {
  if (url.startsWith('node:')) return url;
  const pkg = packageOf(url);
  if (pkg) return `${pkg}/${basename(url)}`;
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return basename(url);
}

function rank(m: Map<string, number>, busy: number): Share[] {
  return [...m]
    .map(([key, micros]) => ({ key, micros, share: busy ? micros / busy : 0 }))
    .sort((a, b) => b.micros - a.micros);
}

/** Self time per sample, charged to the node the sample landed in. */
function selfTimes(p: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  return self;
}

export function summarize(p: CpuProfile): Summary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimes(p);
  const groups = new Map<string, number>();
  const files = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, micros] of self) {
    const frame = byId.get(id)!.callFrame;
    const group = groupOf(frame);
    if (group === 'idle') {
      idle += micros;
      continue;
    }
    busy += micros;
    groups.set(group, (groups.get(group) ?? 0) + micros);
    const file = frame.url ? shortUrl(frame.url) : frame.functionName;
    files.set(file, (files.get(file) ?? 0) + micros);
    const fn = frame.url
      ? `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`
      : frame.functionName;
    functions.set(fn, (functions.get(fn) ?? 0) + micros);
  }
  return {
    busyMicros: busy,
    idleMicros: idle,
    groups: rank(groups, busy),
    files: rank(files, busy),
    functions: rank(functions, busy),
  };
}

/** Self time of functions named like `name`, by their caller. */
export function callers(p: CpuProfile, name: string): Share[] {
  const parent = new Map<number, ProfileNode>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimes(p);
  const out = new Map<string, number>();
  let busy = 0;
  for (const [id, micros] of self) {
    const node = byId.get(id)!;
    if (groupOf(node.callFrame) !== 'idle') busy += micros;
    if (!node.callFrame.functionName.includes(name)) continue;
    const up = parent.get(id)?.callFrame;
    const key = up
      ? `${up.functionName || '(anonymous)'} ${shortUrl(up.url)}:${up.lineNumber + 1}`
      : '(root)';
    out.set(key, (out.get(key) ?? 0) + micros);
  }
  return rank(out, busy);
}

function table(title: string, rows: Share[], top: number): string {
  const lines = rows
    .slice(0, top)
    .map(
      (r) =>
        `  ${(r.share * 100).toFixed(1).padStart(5)} %  ${(r.micros / 1000).toFixed(0).padStart(7)} ms  ${r.key}`,
    );
  return [title, ...lines].join('\n');
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, callers: { type: 'string' } },
  });
  if (positionals.length === 0) {
    console.error(
      'usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile... [--top N] [--callers NAME]',
    );
    process.exit(2);
  }
  const top = Number(values.top);
  for (const file of positionals) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const s = summarize(p);
    console.log(
      `\n${basename(file)}: busy ${(s.busyMicros / 1000).toFixed(0)} ms, idle ${(s.idleMicros / 1000).toFixed(0)} ms`,
    );
    if (values.callers) {
      console.log(table(`self time of *${values.callers}* by caller`, callers(p, values.callers), top));
      continue;
    }
    console.log(table('by kind', s.groups, top));
    console.log(table('by file', s.files, top));
    console.log(table('by function (self)', s.functions, top));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
