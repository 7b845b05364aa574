/**
 * Turns rounds into the figures bench.md asks for: per path medians with min–max, the
 * added latency over `direct` and the hexmesh/HAProxy ratios, each computed within a round
 * (so both sides saw the same machine weather) before taking the median across rounds.
 */
import type { PathName } from '../paths/path.ts';
import type { RoundResult } from './round.ts';
import { spread, type Spread } from './stats.ts';

const MiB = 1024;
const sum = (xs: readonly number[] | undefined): number => (xs ? xs.reduce((a, b) => a + b, 0) : NaN);
const maxOf = (xs: readonly number[] | undefined): number => (xs && xs.length ? Math.max(...xs) : NaN);

export interface PathSummary {
  rounds: number;
  failed: number;
  hop: string;
  maxRps: Spread;
  p50: Spread;
  p90: Spread;
  p99: Spread;
  p999: Spread;
  addedP50: Spread;
  addedP90: Spread;
  addedP99: Spread;
  addedP999: Spread;
  cpuUsPerRequest: Spread;
  vcpuPer1000Rps: Spread;
  /** MiB, the larger of the two proxies (the per-proxy target) and both together. */
  rssIdlePerProxyMiB: Spread;
  /** At the end of the round, after its load and the settle time (Node proxies; RoundOptions.settleS). */
  rssSettledPerProxyMiB: Spread;
  ussSettledPerProxyMiB: Spread;
  rssAfterFixedPerProxyMiB: Spread;
  rssAfterFixedBothMiB: Spread;
  rssAfterMaxPerProxyMiB: Spread;
  /** Private memory (USS), MiB, the larger of the two proxies. */
  ussIdlePerProxyMiB: Spread;
  ussAfterFixedPerProxyMiB: Spread;
  /**
   * GC pauses of the busier proxy (by count) in the measured fixed-rate phase and the
   * max-throughput run; longest pause of either proxy, ms.
   */
  gcFixedPauses: Spread;
  gcFixedMarkCompacts: Spread;
  gcFixedMaxMs: Spread;
  gcMaxPauses: Spread;
  gcMaxMaxMs: Spread;
  /** Largest RSS growth of one proxy while a large body streamed through, MiB. */
  streamRssGrowthMiB: Spread;
  streamMiBPerS: Spread;
  stealPct: Spread;
  errors: string[];
}

export interface Target {
  figure: string;
  value: Spread;
  unit: string;
  target: string;
  pass: boolean | undefined;
}

/**
 * CPU per request against the minimal Node pair (`--paths …,node-floor`), each ratio within a
 * round: how far Node alone is from HAProxy, and how far hexmesh is from Node alone.
 */
/** The floor paths, the tighter first: the lean pair where a run has both (HTTP/1.1 only). */
export const FLOOR_PATHS = ['node-floor-lean', 'node-floor'] as const satisfies readonly PathName[];

export interface FloorRatios {
  path: PathName;
  floorOverHaproxy: Spread;
  hexmeshOverFloor: Spread;
}

export interface Summary {
  paths: Partial<Record<PathName, PathSummary>>;
  targets: Target[];
  /** Absent when the run had no floor path. */
  floor?: FloorRatios;
}

function byRound(rounds: readonly RoundResult[], path: PathName): Map<number, RoundResult> {
  const m = new Map<number, RoundResult>();
  for (const r of rounds) if (r.path === path && r.ok) m.set(r.round, r);
  return m;
}

/** Per round f(path round, direct round), for rounds where both succeeded. */
function paired(
  a: Map<number, RoundResult>,
  b: Map<number, RoundResult>,
  f: (x: RoundResult, y: RoundResult) => number,
): number[] {
  const out: number[] = [];
  for (const [round, x] of a) {
    const y = b.get(round);
    if (y) out.push(f(x, y));
  }
  return out;
}

function summarizePath(rounds: readonly RoundResult[], path: PathName): PathSummary {
  const all = rounds.filter((r) => r.path === path);
  const ok = byRound(rounds, path);
  const direct = byRound(rounds, 'direct');
  const okList = [...ok.values()];
  const of = (f: (r: RoundResult) => number): Spread => spread(okList.map(f));
  const added = (k: 'p50' | 'p90' | 'p99' | 'p999'): Spread =>
    spread(paired(ok, direct, (x, d) => (x.fixed?.[k] ?? NaN) - (d.fixed?.[k] ?? NaN)));
  return {
    rounds: all.length,
    failed: all.filter((r) => !r.ok).length,
    hop: okList[0]?.hop ?? all[0]?.hop ?? '?',
    maxRps: of((r) => r.max?.rps ?? NaN),
    p50: of((r) => r.fixed?.p50 ?? NaN),
    p90: of((r) => r.fixed?.p90 ?? NaN),
    p99: of((r) => r.fixed?.p99 ?? NaN),
    p999: of((r) => r.fixed?.p999 ?? NaN),
    addedP50: added('p50'),
    addedP90: added('p90'),
    addedP99: added('p99'),
    addedP999: added('p999'),
    cpuUsPerRequest: of((r) => (r.proxyNames?.length ? (r.max?.cpuUsPerRequest ?? NaN) : NaN)),
    vcpuPer1000Rps: of((r) => (r.proxyNames?.length ? (r.fixed?.vcpuPer1000Rps ?? NaN) : NaN)),
    rssIdlePerProxyMiB: of((r) => maxOf(r.rssIdleKiB) / MiB),
    rssSettledPerProxyMiB: of((r) => maxOf(r.rssSettledKiB) / MiB),
    ussSettledPerProxyMiB: of((r) => maxOf(r.ussSettledKiB) / MiB),
    rssAfterFixedPerProxyMiB: of((r) => maxOf(r.rssAfterFixedKiB) / MiB),
    rssAfterFixedBothMiB: of((r) => (r.rssAfterFixedKiB?.length ? sum(r.rssAfterFixedKiB) / MiB : NaN)),
    rssAfterMaxPerProxyMiB: of((r) => maxOf(r.rssAfterMaxKiB) / MiB),
    ussIdlePerProxyMiB: of((r) => maxOf(r.ussIdleKiB) / MiB),
    ussAfterFixedPerProxyMiB: of((r) => maxOf(r.ussAfterFixedKiB) / MiB),
    gcFixedPauses: of((r) => maxOf(r.gcFixed?.map((g) => g.count))),
    gcFixedMarkCompacts: of((r) => maxOf(r.gcFixed?.map((g) => g.markCompacts))),
    gcFixedMaxMs: of((r) => maxOf(r.gcFixed?.map((g) => g.maxMs))),
    gcMaxPauses: of((r) => maxOf(r.gcMax?.map((g) => g.count))),
    gcMaxMaxMs: of((r) => maxOf(r.gcMax?.map((g) => g.maxMs))),
    streamRssGrowthMiB: of((r) =>
      r.stream ? maxOf(r.stream.rssPeakKiB.map((p, i) => p - r.stream!.rssBeforeKiB[i])) / MiB : NaN,
    ),
    streamMiBPerS: of((r) => r.stream?.mibPerS ?? NaN),
    stealPct: spread(okList.flatMap((r) => [r.fixed?.stealPct ?? NaN, r.max?.stealPct ?? NaN])),
    errors: [...new Set(all.flatMap((r) => [r.error, r.streamError].filter((e): e is string => !!e)))],
  };
}

/** Growth of a proxy's RSS while 100 MiB streams through that still counts as "flat". */
export const FLAT_GROWTH_MIB = 16;

function judge(s: Spread, ok: (v: number) => boolean): boolean | undefined {
  return Number.isFinite(s.median) ? ok(s.median) : undefined;
}

export function summarize(rounds: readonly RoundResult[], paths: readonly PathName[]): Summary {
  const summary: Summary = { paths: {}, targets: [] };
  for (const p of paths) summary.paths[p] = summarizePath(rounds, p);
  const hm = byRound(rounds, 'hexmesh');
  const ha = byRound(rounds, 'haproxy');
  const ratio = (f: (r: RoundResult) => number): Spread => spread(paired(hm, ha, (x, y) => f(x) / f(y)));
  const diff = (f: (r: RoundResult) => number): Spread => spread(paired(hm, ha, (x, y) => f(x) - f(y)));
  const cpuOf = (r: RoundResult): number => r.max?.cpuUsPerRequest ?? NaN;
  const cpu = ratio(cpuOf);
  const floorPath = FLOOR_PATHS.find((p) => byRound(rounds, p).size > 0);
  if (floorPath) {
    const fl = byRound(rounds, floorPath);
    summary.floor = {
      path: floorPath,
      floorOverHaproxy: spread(paired(fl, ha, (x, y) => cpuOf(x) / cpuOf(y))),
      hexmeshOverFloor: spread(paired(hm, fl, (x, y) => cpuOf(x) / cpuOf(y))),
    };
  }
  // bench.md: h2c and gRPC within 4× of HAProxy, HTTP/1.1 within 2.5×.
  const http2 = rounds.length > 0 && rounds.every((r) => r.protocol !== 'http1');
  const tput = ratio((r) => r.max?.rps ?? NaN);
  const p50 = diff((r) => r.fixed?.p50 ?? NaN);
  const p99 = diff((r) => r.fixed?.p99 ?? NaN);
  const h = summary.paths.hexmesh;
  const rss = h?.rssAfterFixedPerProxyMiB ?? spread([]);
  const rssIdle = h?.rssIdlePerProxyMiB ?? spread([]);
  const uss = h?.ussIdlePerProxyMiB ?? spread([]);
  const growth = h?.streamRssGrowthMiB ?? spread([]);
  summary.targets = [
    {
      figure: 'CPU µs per request (full load), hexmesh / HAProxy',
      value: cpu,
      unit: '×',
      target: http2 ? '≤ 4×' : '≤ 2.5× (stretch 2.0×)',
      pass: judge(cpu, (v) => v <= (http2 ? 4 : 2.5)),
    },
    {
      figure: 'max throughput, hexmesh / HAProxy',
      value: tput,
      unit: '×',
      target: '≥ 0.5×',
      pass: judge(tput, (v) => v >= 0.5),
    },
    {
      figure: 'added p50 at fixed rate, hexmesh − HAProxy',
      value: p50,
      unit: 'ms',
      target: '≤ +0.5 ms',
      pass: judge(p50, (v) => v <= 0.5),
    },
    {
      figure: 'added p99 at fixed rate, hexmesh − HAProxy',
      value: p99,
      unit: 'ms',
      target: '≤ +2.0 ms',
      pass: judge(p99, (v) => v <= 2),
    },
    {
      figure: 'hexmesh RSS per proxy, idle (300 ms after start-up)',
      value: rssIdle,
      unit: 'MiB',
      target: '≤ 50 MiB',
      pass: judge(rssIdle, (v) => v <= 50),
    },
    {
      figure: 'hexmesh RSS per proxy after fixed-rate run',
      value: rss,
      unit: 'MiB',
      target: '≤ 60 MiB',
      pass: judge(rss, (v) => v <= 60),
    },
    {
      figure: 'hexmesh private memory (USS) per proxy, idle (300 ms after start-up)',
      value: uss,
      unit: 'MiB',
      target: '≤ 15 MiB',
      pass: judge(uss, (v) => v <= 15),
    },
    {
      figure: 'hexmesh RSS growth per proxy, streamed body',
      value: growth,
      unit: 'MiB',
      target: `flat (≤ ${FLAT_GROWTH_MIB} MiB)`,
      pass: judge(growth, (v) => v <= FLAT_GROWTH_MIB),
    },
  ];
  return summary;
}

function fmt(v: number, digits: number): string {
  if (!Number.isFinite(v)) return '—';
  return v.toFixed(digits);
}

/** "median [min–max]", or just the median when there is one round. */
export function fmtSpread(s: Spread, digits = 1, sign = false): string {
  if (s.n === 0) return '—';
  const f = (v: number): string => (sign && v > 0 ? '+' : '') + fmt(v, digits);
  return s.n === 1 ? f(s.median) : `${f(s.median)} [${f(s.min)}–${f(s.max)}]`;
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The stdout report: one table per path group, then the targets. */
export function formatSummary(s: Summary): string {
  const paths = Object.entries(s.paths) as [PathName, PathSummary][];
  const out: string[] = [];
  out.push('Each cell: median [min–max] over the rounds that succeeded.\n');
  out.push(
    table(
      [
        'path',
        'hop',
        'ok rounds',
        'max rps',
        'p50 ms',
        'p90 ms',
        'p99 ms',
        'p99.9 ms',
        'added p50',
        'added p99',
        'added p99.9',
      ],
      paths.map(([name, p]) => [
        name,
        p.hop,
        `${p.rounds - p.failed}/${p.rounds}`,
        fmtSpread(p.maxRps, 0),
        fmtSpread(p.p50, 2),
        fmtSpread(p.p90, 2),
        fmtSpread(p.p99, 2),
        fmtSpread(p.p999, 2),
        name === 'direct' ? '—' : fmtSpread(p.addedP50, 2, true),
        name === 'direct' ? '—' : fmtSpread(p.addedP99, 2, true),
        name === 'direct' ? '—' : fmtSpread(p.addedP999, 2, true),
      ]),
    ),
  );
  out.push('');
  out.push(
    table(
      [
        'path',
        'CPU µs/req (both)',
        'vCPU/1000 rps (both)',
        'RSS idle/proxy MiB',
        'RSS fixed/proxy MiB',
        'RSS fixed both MiB',
        'RSS max/proxy MiB',
        'stream RSS growth MiB',
        'stream MiB/s',
        'steal %',
      ],
      paths
        .filter(([name]) => name !== 'direct')
        .map(([name, p]) => [
          name,
          fmtSpread(p.cpuUsPerRequest, 0),
          fmtSpread(p.vcpuPer1000Rps, 3),
          fmtSpread(p.rssIdlePerProxyMiB, 1),
          fmtSpread(p.rssAfterFixedPerProxyMiB, 1),
          fmtSpread(p.rssAfterFixedBothMiB, 1),
          fmtSpread(p.rssAfterMaxPerProxyMiB, 1),
          fmtSpread(p.streamRssGrowthMiB, 1),
          fmtSpread(p.streamMiBPerS, 0),
          fmtSpread(p.stealPct, 1),
        ]),
    ),
  );
  out.push('');
  out.push(
    table(
      [
        'path',
        'USS idle/proxy MiB',
        'RSS / USS settled/proxy MiB',
        'USS fixed/proxy MiB',
        'GC pauses fixed (mark-compacts)',
        'GC max pause fixed ms',
        'GC pauses max-rps',
        'GC max pause max-rps ms',
      ],
      paths
        .filter(([name]) => name !== 'direct')
        .map(([name, p]) => [
          name,
          fmtSpread(p.ussIdlePerProxyMiB, 1),
          p.ussSettledPerProxyMiB.n
            ? `${fmtSpread(p.rssSettledPerProxyMiB, 1)} / ${fmtSpread(p.ussSettledPerProxyMiB, 1)}`
            : '—',
          fmtSpread(p.ussAfterFixedPerProxyMiB, 1),
          p.gcFixedPauses.n
            ? `${fmtSpread(p.gcFixedPauses, 0)} (${fmtSpread(p.gcFixedMarkCompacts, 0)})`
            : '—',
          fmtSpread(p.gcFixedMaxMs, 2),
          fmtSpread(p.gcMaxPauses, 0),
          fmtSpread(p.gcMaxMaxMs, 2),
        ]),
    ),
  );
  out.push('');
  out.push(
    table(
      ['figure (per round, then median)', 'value', 'target', ''],
      s.targets.map((t) => [
        t.figure,
        `${fmtSpread(t.value, 2, t.unit === 'ms')} ${t.unit}`,
        t.target,
        t.pass === undefined ? 'n/a' : t.pass ? 'PASS' : 'FAIL',
      ]),
    ),
  );
  if (s.floor)
    out.push(
      `\nCPU per request, per round: ${s.floor.path} / HAProxy ${fmtSpread(s.floor.floorOverHaproxy, 2)}×, ` +
        `hexmesh / ${s.floor.path} ${fmtSpread(s.floor.hexmeshOverFloor, 2)}×`,
    );
  for (const [name, p] of paths) for (const e of p.errors) out.push(`\n${name}: ${e}`);
  return out.join('\n');
}
