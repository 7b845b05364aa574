/**
 * Idle memory of the sidecar (issue 11: "RSS ≤ 50 MiB idle, USS ≤ 15 MiB"), and what it loads.
 *
 *   node --import tsx bench/sidecar-footprint.ts [--samples 5] [--settle 300] [--base DIR] [--modules]
 *
 * Starts the benchmark's hexmesh pair (bench/paths/hexmesh.ts: two `hexmesh proxy --config FILE`
 * processes with mutual TLS, one request sent through) `samples` times, waits `settle` ms as the
 * benchmark does before its idle reading, and prints each proxy's RSS and USS (private memory,
 * smaps_rollup) and the medians. With `--base DIR` (another checkout, node_modules linked) both
 * trees take turns, so a busy machine's noise hits both alike. With `--modules`, one more pair per
 * tree runs under test/support/module-trace.mjs and the packages its proxies' main threads loaded
 * are listed (read at exit; that pair's memory is not counted).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ProcessGroup } from './lib/process-group.ts';
import { rssKiB, ussKiB } from './lib/proc-stats.ts';
import { upstreamContext } from './lib/side-by-side.ts';
import type { PathStarter } from './paths/path.ts';

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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      samples: { type: 'string', default: '5' },
      settle: { type: 'string', default: '300' },
      base: { type: 'string' },
      modules: { type: 'boolean', default: false },
    },
  });
  const samples = Number(values.samples);
  const settleMs = Number(values.settle);
  const group = new ProcessGroup();
  const tmpDir = mkdtempSync(join(tmpdir(), 'hexmesh-footprint-'));
  try {
    const ctx = await upstreamContext(group, tmpDir, true);
    const load = async (dir: string) =>
      ((await import(join(dir, 'bench', 'paths', 'hexmesh.ts'))) as { startHexmesh: PathStarter })
        .startHexmesh;
    const trees: Record<string, PathStarter> = { new: await load(resolve(HERE, '..')) };
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
