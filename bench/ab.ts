/**
 * A/B comparison of two hexmesh trees on one busy machine: both sidecar pairs (and an HAProxy
 * pair) run side by side and take turns under the same closed-loop wrk load, so machine noise
 * hits both alike. Reports per run and as medians: CPU µs per request (both proxies), rps, RSS
 * and USS per proxy.
 *
 *   node --import tsx bench/ab.ts --base /path/to/other/tree [--runs 6] [--duration 4] [--tls]
 *
 * `--base` is another checkout of this repository (e.g. `git archive HEAD~1 | tar -x -C dir`,
 * node_modules linked); the tree this file is in is "new".
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ProcessGroup, type Managed } from './lib/process-group.ts';
import { cpuSeconds, rssKiB } from './lib/proc-stats.ts';
import { upstreamContext } from './lib/side-by-side.ts';
import { runWrk } from './lib/wrk.ts';
import { startHaproxy } from './paths/haproxy.ts';
import type { PathStarter, RunningPath } from './paths/path.ts';

const HERE = import.meta.dirname;

/** Private memory (USS) of `pid` in KiB: Private_Clean + Private_Dirty of smaps_rollup. */
function ussKiB(pid: number): number {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? 0);
  return field('Private_Clean') + field('Private_Dirty');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      runs: { type: 'string', default: '6' },
      duration: { type: 'string', default: '4' },
      tls: { type: 'boolean', default: false },
    },
  });
  if (!values.base) throw new Error('--base DIR is required');
  const runs = Number(values.runs);
  const durationS = Number(values.duration);
  const group = new ProcessGroup();
  const tmpDir = mkdtempSync(join(tmpdir(), 'hexmesh-ab-'));
  try {
    const ctx = await upstreamContext(group, tmpDir, values.tls);
    const starters: Record<string, PathStarter> = {
      base: ((await import(resolve(values.base, 'bench/paths/hexmesh.ts'))) as { startHexmesh: PathStarter })
        .startHexmesh,
      new: ((await import(join(HERE, 'paths/hexmesh.ts'))) as { startHexmesh: PathStarter }).startHexmesh,
      haproxy: startHaproxy,
    };
    const paths: Record<string, RunningPath> = {};
    for (const [name, start] of Object.entries(starters)) paths[name] = await start(ctx);
    const mem = (ps: readonly Managed[]) => ({
      rss: ps.map((p) => rssKiB(p.child.pid!) / 1024),
      uss: ps.map((p) => ussKiB(p.child.pid!) / 1024),
    });
    const idle = Object.fromEntries(Object.entries(paths).map(([n, p]) => [n, mem(p.proxies)]));
    const cpu: Record<string, number[]> = {};
    const rps: Record<string, number[]> = {};
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? Object.keys(paths) : Object.keys(paths).reverse();
      const line: string[] = [];
      for (const name of order) {
        const p = paths[name];
        const pids = p.proxies.map((m) => m.child.pid!);
        const c0 = pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
        const w = await runWrk(group, { url: `${p.origin}/`, host: p.host, connections: 16, durationS });
        const c1 = pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
        const us = ((c1 - c0) * 1e6) / Math.max(1, w.requests);
        (cpu[name] ??= []).push(us);
        (rps[name] ??= []).push(w.rps);
        line.push(
          `${name} ${w.rps.toFixed(0)} rps ${us.toFixed(0)} µs/req${w.errors ? ` ${w.errors} errors` : ''}`,
        );
      }
      console.log(`run ${i + 1}/${runs}: ${line.join(' | ')}`);
    }
    const loaded = Object.fromEntries(Object.entries(paths).map(([n, p]) => [n, mem(p.proxies)]));
    const ratio = (n: string): number => median(cpu[n].map((c, i) => c / cpu.haproxy[i]));
    for (const n of Object.keys(paths)) {
      const f = (xs: number[]) => xs.map((x) => x.toFixed(1)).join('/');
      console.log(
        `${n.padEnd(8)} CPU ${median(cpu[n]).toFixed(0)} µs/req (×${ratio(n).toFixed(2)} HAProxy, per-run ratio median), ` +
          `${median(rps[n]).toFixed(0)} rps (×${median(rps[n].map((r, i) => r / rps.haproxy[i])).toFixed(2)}), ` +
          `RSS idle ${f(idle[n].rss)} loaded ${f(loaded[n].rss)} MiB, USS idle ${f(idle[n].uss)} loaded ${f(loaded[n].uss)} MiB`,
      );
    }
  } finally {
    await group.close();
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  },
);
