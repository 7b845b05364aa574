/**
 * The "Latest results" table of docs/benchmark.md, printed from a results file, so every
 * figure in the docs can be traced to a committed run:
 *
 *   node --import tsx bench/latest-results.ts bench/results/<date>.json
 */
import { readFileSync } from 'node:fs';
import type { PathName } from './paths/path.ts';
import type { RoundResult } from './lib/round.ts';
import type { FloorRatios, PathSummary, Summary } from './lib/report.ts';
import { FLOOR_PATHS, fmtSpread, summarize } from './lib/report.ts';
import type { Spread } from './lib/stats.ts';

interface ResultsFile {
  startedAt: string;
  options: { rounds: number; round: { durationS: number; rate: number }; tls: boolean; hop?: string };
  machine: { nproc: number; loadavg?: number[]; hexmeshCommit?: string; node?: string };
  summary: Record<string, Summary>;
  rounds?: RoundResult[];
}

const file = process.argv[2];
if (!file) {
  console.error('usage: node --import tsx bench/latest-results.ts bench/results/<date>.json');
  process.exit(2);
}
const r = JSON.parse(readFileSync(file, 'utf8')) as ResultsFile;
const m = (s: Spread | undefined, d = 0): string => (s && s.n ? s.median.toFixed(d) : '—');
const target = (s: Summary, prefix: string): Spread | undefined =>
  s.targets.find((t) => t.figure.startsWith(prefix))?.value;

/** Per-round floor ratios: from the summary, or worked out from the rounds (files before session 7). */
function floorOf(protocol: string, s: Summary): FloorRatios | undefined {
  if (s.floor || !r.rounds) return s.floor;
  const rounds = r.rounds.filter((x) => x.protocol === protocol);
  return summarize(rounds, Object.keys(s.paths) as PathName[]).floor;
}

const rows: string[][] = [];
for (const [protocol, s] of Object.entries(r.summary)) {
  const h: PathSummary | undefined = s.paths.hexmesh;
  const ha: PathSummary | undefined = s.paths.haproxy;
  if (!h) continue;
  const okRounds = `${h.rounds - h.failed}/${h.rounds}`;
  // The minimal Node pair, when the run had one (--paths ...,node-floor), and its ratios within
  // each round (medians of per-round ratios); of medians when a file has no rounds.
  const ratios = floorOf(protocol, s);
  const floorPath = ratios?.path ?? FLOOR_PATHS.find((p) => s.paths[p]);
  const floor: PathSummary | undefined = floorPath && s.paths[floorPath];
  const floorCpu = !floor
    ? '—'
    : ratios
      ? `${m(floor.cpuUsPerRequest)} (${m(ratios.floorOverHaproxy, 1)}×; hexmesh ${m(ratios.hexmeshOverFloor, 2)}× it)`
      : ha?.cpuUsPerRequest.n
        ? `${m(floor.cpuUsPerRequest)} (${(floor.cpuUsPerRequest.median / ha.cpuUsPerRequest.median).toFixed(1)}×)`
        : '—';
  rows.push([
    `${protocol}, ${r.options.tls ? 'mutual TLS' : 'plaintext'}`,
    okRounds,
    `${m(h.cpuUsPerRequest)} (${m(target(s, 'CPU µs'), 1)}×; HAProxy ${m(ha?.cpuUsPerRequest)})`,
    floorCpu,
    `${m(target(s, 'max throughput'), 2)}×`,
    `${m(h.p99, 1)} / ${m(ha?.p99, 1)}`,
    `${m(h.rssIdlePerProxyMiB)} / ${m(h.rssAfterFixedPerProxyMiB)} / ${m(h.rssSettledPerProxyMiB)}`,
    `${m(h.ussIdlePerProxyMiB, 1)} / ${m(h.ussAfterFixedPerProxyMiB)} / ${m(h.ussSettledPerProxyMiB, 1)}`,
    h.gcFixedPauses?.n
      ? `${m(h.gcFixedPauses)} (${m(h.gcFixedMarkCompacts)}), ${m(h.gcFixedMaxMs, 1)} ms`
      : '—',
  ]);
}
const head = [
  'protocol, hop',
  'ok rounds',
  'CPU µs/req hexmesh (× HAProxy)',
  'Node floor µs/req (× HAProxy; hexmesh × floor)',
  'max rps × HAProxy',
  `p99 ms at ${r.options.round.rate} rps, hexmesh / HAProxy`,
  'RSS idle / after fixed rate / settled after load, MiB',
  'USS idle / after fixed rate / settled after load, MiB',
  'GC pauses at fixed rate (mark-compacts), longest',
];
const w = head.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i].length)));
const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
console.log([line(head), `| ${w.map((n) => '-'.repeat(n)).join(' | ')} |`, ...rows.map(line)].join('\n'));
const any = Object.values(r.summary)[0];
const ha = any?.paths.haproxy;
if (ha)
  console.log(
    `\nHAProxy RSS per proxy ${fmtSpread(ha.rssAfterFixedPerProxyMiB, 0)} MiB, USS ${fmtSpread(ha.ussIdlePerProxyMiB, 1)} MiB.`,
  );
