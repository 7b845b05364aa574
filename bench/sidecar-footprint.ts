/**
 * Memory of the sidecar (issue 11: "RSS ≤ 50 MiB idle, ≤ 60 MiB after the fixed-rate run,
 * USS ≤ 15 MiB idle"): once after start-up, over time, and after load.
 *
 *   node --import tsx bench/sidecar-footprint.ts [--samples 5] [--settle 300] [--base DIR] [--modules]
 *   node --import tsx bench/sidecar-footprint.ts --timeline SECONDS [--every 1000] [--settle 300]
 *   node --import tsx bench/sidecar-footprint.ts --load RPS:SECONDS [--warmup 2] [--timeline SECONDS] [--every 1000]
 *
 * Starts the benchmark's hexmesh pair (bench/paths/hexmesh.ts: two `hexmesh proxy --config FILE`
 * processes with mutual TLS, one request sent through) `samples` times, waits `settle` ms as the
 * benchmark does before its idle reading, and prints each proxy's RSS and USS (private memory,
 * smaps_rollup) and the medians. With `--base DIR` (another checkout, node_modules linked) both
 * trees take turns, so a busy machine's noise hits both alike. With `--modules`, one more pair per
 * tree runs under test/support/module-trace.mjs and the packages its proxies' main threads loaded
 * are listed (read at exit; that pair's memory is not counted).
 *
 * `--timeline SECONDS` starts one pair instead and prints both proxies' RSS and USS, and the GC
 * pauses since the row before, at `settle` ms after start-up and then every `--every` ms up to
 * SECONDS: how V8 gives memory back as the pair sits idle. `--load RPS:SECONDS` first sends the
 * benchmark's fixed-rate load through the pair (bench/open-loop.ts over HTTP/1.1, 16 connections,
 * `--warmup` seconds, then SECONDS at RPS, as a bench round's fixed-rate phase) and starts the
 * timeline at its end, so one sees whether and how fast memory comes back down after load.
 * Node flags for the proxies go in HEXMESH_BENCH_NODE_ARGS (e.g. `--max-semi-space-size=2`);
 * malloc's settings (MALLOC_ARENA_MAX, …) in the environment, which the proxies inherit.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { intFlag, numberFlag } from './lib/cli-flags.ts';
import { runOpenLoop } from './lib/open-loop-runner.ts';
import { ProcessGroup } from './lib/process-group.ts';
import { rssKiB, ussKiB } from './lib/proc-stats.ts';
import { upstreamContext } from './lib/side-by-side.ts';
import type { PathContext, PathStarter, RunningPath } from './paths/path.ts';

const HERE = import.meta.dirname;
const TRACER = resolve(HERE, '..', 'test', 'support', 'module-trace.mjs');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

/** Package names (`zod`, `@opentelemetry/api`) in a module trace, each once, sorted. */
export function packagesIn(trace: string): string[] {
  const names = new Set<string>();
  for (const url of trace.split('\n')) {
    const at = url.lastIndexOf('/node_modules/');
    if (at < 0) continue;
    const parts = url.slice(at + '/node_modules/'.length).split('/');
    names.add(parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]);
  }
  return [...names].sort();
}

/** `--load RPS:SECONDS`, e.g. `1000:10`: a rate > 0 and a duration ≥ 1 s; throws naming the flag. */
export function parseLoad(text: string): { rps: number; seconds: number } {
  const m = /^\s*([\d.]+)\s*:\s*([\d.]+)\s*$/.exec(text);
  const rps = Number(m?.[1]);
  const seconds = Number(m?.[2]);
  if (!m || !(rps > 0) || !(seconds >= 1))
    throw new Error(
      `--load must be RPS:SECONDS with RPS > 0 and SECONDS ≥ 1, e.g. 1000:10; got ${JSON.stringify(text)}`,
    );
  return { rps, seconds };
}

/**
 * When a timeline reads, in ms from its start: at `firstMs`, then at every multiple of `everyMs`
 * after it up to `seconds` (so `300, 1000, 2000, …`: the bench's idle reading, then a steady beat).
 */
export function timelineTimes(firstMs: number, everyMs: number, seconds: number): number[] {
  const lastMs = seconds * 1000;
  const times = firstMs <= lastMs ? [firstMs] : [];
  for (let t = (Math.floor(firstMs / everyMs) + 1) * everyMs; t <= lastMs; t += everyMs) times.push(t);
  return times;
}

/** One reading of the pair: per proxy (client side first), KiB, and GC pauses since the row before. */
export interface MemoryRow {
  atMs: number;
  rssKiB: number[];
  ussKiB: number[];
  /** Scavenges and mark-compacts per proxy since the previous row (absent without --trace-gc). */
  gc?: { scavenges: number; markCompacts: number }[];
}

const mib = (kib: number): string => (kib / 1024).toFixed(1);

/** The timeline table's header for proxies `names` (client side first). */
export function timelineHeader(names: readonly string[]): string {
  const cols = names.map((n) => `${`${n} RSS`.padStart(20)} ${`USS`.padStart(6)}`).join(' ');
  return `${'t s'.padStart(7)} ${cols}   GC since row before (scavenges/mark-compacts per proxy)`;
}

/** One row of the timeline table: seconds, then RSS and USS in MiB per proxy, then the GC pauses. */
export function timelineRow(r: MemoryRow): string {
  const cols = r.rssKiB.map((rss, i) => `${mib(rss).padStart(20)} ${mib(r.ussKiB[i]).padStart(6)}`).join(' ');
  const gc = r.gc ? r.gc.map((g) => `${g.scavenges}/${g.markCompacts}`).join(' ') : '';
  return `${(r.atMs / 1000).toFixed(1).padStart(7)} ${cols}   ${gc}`.trimEnd();
}

/** A reading on one line: `RSS 58.1/57.9 USS 15.3/15.2 MiB` (client/server proxy). */
export function readingLine(r: MemoryRow): string {
  return `RSS ${r.rssKiB.map(mib).join('/')} USS ${r.ussKiB.map(mib).join('/')} MiB`;
}

/** The machine's 1, 5 and 15 minute load averages, printed so a reading carries how busy it was. */
const loadAverage = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

interface TimelineOptions {
  seconds: number;
  everyMs: number;
  settleMs: number;
  load?: { rps: number; seconds: number; warmupS: number };
}

/** Read the pair at `times` ms after `t0` (performance.now()), printing each row as it comes. */
async function readTimeline(path: RunningPath, t0: number, times: readonly number[]): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  for (const at of times) {
    const wait = t0 + at - performance.now();
    if (wait > 0) await sleep(wait);
    const row = read(path, t0);
    rows.push(row);
    console.log(timelineRow(row));
  }
  return rows;
}

/** Both proxies' memory now, and their GC pauses since the last read (a new GC phase starts). */
function read(path: RunningPath, t0: number): MemoryRow {
  for (const p of path.proxies)
    if (p.hasExited()) throw new Error(`${p.name} exited:\n${p.tail().slice(-600)}`);
  const pids = path.proxies.map((p) => p.pid);
  const row: MemoryRow = { atMs: performance.now() - t0, rssKiB: pids.map(rssKiB), ussKiB: pids.map(ussKiB) };
  if (path.gc?.length) {
    row.gc = path.gc.map((g) => g.end());
    for (const g of path.gc) g.begin();
  }
  return row;
}

/** `--timeline` / `--load`: one pair, its memory over time after start-up or after a fixed-rate load. */
async function timeline(
  start: PathStarter,
  ctx: PathContext,
  group: ProcessGroup,
  o: TimelineOptions,
): Promise<void> {
  const flags = process.env.HEXMESH_BENCH_NODE_ARGS?.trim();
  const malloc = Object.entries(process.env)
    .filter(([k]) => k.startsWith('MALLOC_') || k === 'GLIBC_TUNABLES')
    .map(([k, v]) => `${k}=${v}`);
  console.log(
    `proxy node flags: ${flags || '(none)'}; malloc env: ${malloc.join(' ') || '(none)'}; ` +
      `load average ${loadAverage()}`,
  );
  const path = await start(ctx);
  const names = path.proxies.map((p) => p.name);
  try {
    const t0 = performance.now();
    for (const g of path.gc ?? []) g.begin();
    if (!o.load) {
      console.log(`${names.join('/')} after start-up (pair ready, one request through):`);
      console.log(timelineHeader(names));
      const rows = await readTimeline(path, t0, timelineTimes(o.settleMs, o.everyMs, o.seconds));
      if (rows.length) {
        console.log(`first (${(rows[0].atMs / 1000).toFixed(1)} s): ${readingLine(rows[0])}`);
        console.log(`last  (${(rows.at(-1)!.atMs / 1000).toFixed(1)} s): ${readingLine(rows.at(-1)!)}`);
      }
      return;
    }
    await sleep(o.settleMs);
    console.log(`idle, ${o.settleMs} ms after start-up: ${readingLine(read(path, t0))}`);
    const { rps, seconds, warmupS } = o.load;
    let end: MemoryRow | undefined;
    let tEnd = 0;
    const fixed = await runOpenLoop(group, {
      origin: path.origin,
      host: path.host,
      rate: rps,
      durationS: seconds,
      // As a bench round's fixed-rate phase (bench/run.ts: fixedConnections).
      connections: 16,
      warmupS,
      protocol: ctx.protocol,
      atStart: () => {},
      // Read at once, before the generator closes its connections.
      atEnd: () => {
        tEnd = performance.now();
        end = read(path, tEnd);
      },
    });
    console.log(
      `load: ${warmupS} s warm-up, then ${seconds} s at ${rps} rps: ${fixed.achievedRps.toFixed(0)} rps achieved, ` +
        `${fixed.errors}/${fixed.sent} failed, p99 ${fixed.p99.toFixed(2)} ms`,
    );
    console.log(`${names.join('/')} from the end of the load:`);
    console.log(timelineHeader(names));
    console.log(timelineRow(end!));
    const rows = await readTimeline(path, tEnd, timelineTimes(o.everyMs, o.everyMs, o.seconds));
    console.log(`at load end: ${readingLine(end!)}`);
    if (rows.length)
      console.log(`${(rows.at(-1)!.atMs / 1000).toFixed(1)} s after: ${readingLine(rows.at(-1)!)}`);
  } finally {
    await path.close();
    console.log(`load average ${loadAverage()}`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      samples: { type: 'string', default: '5' },
      settle: { type: 'string', default: '300' },
      base: { type: 'string' },
      modules: { type: 'boolean', default: false },
      timeline: { type: 'string' },
      every: { type: 'string' },
      load: { type: 'string' },
      warmup: { type: 'string' },
    },
  });
  const samples = intFlag('samples', values.samples, 5, 1);
  const settleMs = numberFlag('settle', values.settle, 300, 0);
  const timed = values.timeline !== undefined || values.load !== undefined;
  if (timed && (values.base || values.modules))
    throw new Error('--timeline and --load run one pair of this tree: not with --base or --modules');
  const loadSpec = values.load === undefined ? undefined : parseLoad(values.load);
  const timelineOpts: TimelineOptions = {
    seconds: numberFlag('timeline', values.timeline, 0, 0),
    everyMs: numberFlag('every', values.every, 1000, 10),
    settleMs,
    load: loadSpec && { ...loadSpec, warmupS: numberFlag('warmup', values.warmup, 2, 0) },
  };
  const group = new ProcessGroup();
  const tmpDir = mkdtempSync(join(tmpdir(), 'hexmesh-footprint-'));
  try {
    const ctx = await upstreamContext(group, tmpDir, true);
    const load = async (dir: string) =>
      ((await import(join(dir, 'bench', 'paths', 'hexmesh.ts'))) as { startHexmesh: PathStarter })
        .startHexmesh;
    const trees: Record<string, PathStarter> = { new: await load(resolve(HERE, '..')) };
    if (timed) {
      await timeline(trees.new, ctx, group, timelineOpts);
      return;
    }
    if (values.base) trees.base = await load(resolve(values.base));
    const rss: Record<string, number[]> = {};
    const uss: Record<string, number[]> = {};
    for (let i = 0; i < samples; i++) {
      const order = i % 2 === 0 ? Object.keys(trees) : Object.keys(trees).reverse();
      const line: string[] = [];
      for (const name of order) {
        const path = await trees[name](ctx);
        try {
          await new Promise((res) => setTimeout(res, settleMs));
          const pids = path.proxies.map((p) => p.pid);
          const r = pids.map((pid) => rssKiB(pid) / 1024);
          const u = pids.map((pid) => ussKiB(pid) / 1024);
          (rss[name] ??= []).push(...r);
          (uss[name] ??= []).push(...u);
          const f = (xs: number[]) => xs.map((x) => x.toFixed(1)).join('/');
          line.push(`${name} RSS ${f(r)} USS ${f(u)} MiB`);
        } finally {
          await path.close();
        }
      }
      console.log(`sample ${i + 1}/${samples} (client/server proxy): ${line.join(' | ')}`);
    }
    for (const name of Object.keys(trees))
      console.log(
        `${name.padEnd(4)} idle per proxy, median of ${rss[name].length}: RSS ${median(rss[name]).toFixed(1)} MiB, USS ${median(uss[name]).toFixed(1)} MiB`,
      );
    if (values.modules) {
      for (const [name, start] of Object.entries(trees)) {
        const before = process.env.HEXMESH_BENCH_NODE_ARGS;
        const path = await (async () => {
          // Both proxies of the pair append to one file.
          process.env.HEXMESH_BENCH_NODE_ARGS = `${before ?? ''} --import ${TRACER}`;
          process.env.MODULE_TRACE = join(tmpDir, `trace-${name}.txt`);
          try {
            return await start(ctx);
          } finally {
            if (before === undefined) delete process.env.HEXMESH_BENCH_NODE_ARGS;
            else process.env.HEXMESH_BENCH_NODE_ARGS = before;
            delete process.env.MODULE_TRACE;
          }
        })();
        await new Promise((res) => setTimeout(res, settleMs));
        await path.close();
        const trace = readFileSync(join(tmpDir, `trace-${name}.txt`), 'utf8');
        console.log(`${name} packages loaded (both proxies): ${packagesIn(trace).join(', ')}`);
      }
    }
  } finally {
    await group.close();
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === import.meta.filename)
  main().then(
    () => process.exit(0),
    (err: Error) => {
      console.error(err.stack ?? err.message);
      process.exit(1);
    },
  );
