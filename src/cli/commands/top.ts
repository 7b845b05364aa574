/**
 * `hexmesh top SERVICE`: the busiest paths through a service's proxies right now, from the
 * tap stream, over a sliding 10 s window: count, success rate, p50 and p99 latency. The
 * table is redrawn every second, in place on a terminal, appended blocks into a pipe
 * (FrameWriter, as every `--watch`); `--once` watches for `--for` (default
 * 5 s), prints one table (or `-o json|yaml`) and exits, for scripts. `-o wide` adds the
 * failed count, p95 and the slowest request.
 *
 * Tap is rate-limited per proxy (`--rate`, default 100/s): beyond that, counts are of the
 * events seen, and the JSON says how many were dropped.
 */
import { Command, Option } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import {
  describeFailure,
  formatData,
  formatTable,
  openControlClient,
  UsageError,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';
import { FrameWriter } from '../client/watch.ts';
import { streamTap, tapOptions, tapQuery, type TapFlags, type TapLine } from './tap.ts';

/** Most distinct rows kept (a path flood must not grow memory without bound). */
const MAX_ROWS = 2000;
/** Samples kept per row within the window (percentiles from the most recent ones). */
const MAX_SAMPLES = 5000;

interface Sample {
  at: number;
  ms: number;
  ok: boolean;
}

export interface TopRow {
  source: string;
  destination: string;
  method: string;
  path: string;
  count: number;
  successRate: number;
  /** Requests that failed (5xx, or a gRPC status other than OK). */
  failed: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Rows of a sliding window of tap events. `now` is injectable for tests. */
export class TopWindow {
  readonly #rows = new Map<
    string,
    {
      key: Pick<TopRow, 'source' | 'destination' | 'method' | 'path'>;
      samples: Sample[];
    }
  >();
  events = 0;
  dropped = 0;

  constructor(
    readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  add(l: TapLine): void {
    if (l.type === 'dropped') {
      this.dropped += Number(l.count) || 0;
      return;
    }
    if (l.type !== 'request') return;
    this.events++;
    const source = String(l.srcService);
    const destination = String(l.dstService);
    const method = String(l.method);
    const path = String(l.path);
    const id = `${source}\u0000${destination}\u0000${method}\u0000${path}`;
    let row = this.#rows.get(id);
    if (!row) {
      if (this.#rows.size >= MAX_ROWS) return;
      row = { key: { source, destination, method, path }, samples: [] };
      this.#rows.set(id, row);
    }
    const status = Number(l.status);
    const grpc = l.grpcStatus;
    row.samples.push({
      at: this.now(),
      ms: Number(l.latencyMs),
      ok: status < 500 && (grpc === null || grpc === undefined || grpc === 'OK' || grpc === '0'),
    });
    if (row.samples.length > MAX_SAMPLES) row.samples.shift();
  }

  /** Rows with traffic in the window, busiest first. */
  rows(): TopRow[] {
    const cutoff = this.now() - this.windowMs;
    const out: TopRow[] = [];
    for (const [id, row] of this.#rows) {
      let i = 0;
      while (i < row.samples.length && row.samples[i].at < cutoff) i++;
      if (i > 0) row.samples.splice(0, i);
      if (row.samples.length === 0) {
        this.#rows.delete(id);
        continue;
      }
      const lat = row.samples.map((s) => s.ms).sort((a, b) => a - b);
      const ok = row.samples.filter((s) => s.ok).length;
      out.push({
        ...row.key,
        count: row.samples.length,
        successRate: ok / row.samples.length,
        failed: row.samples.length - ok,
        p50Ms: quantile(lat, 0.5),
        p95Ms: quantile(lat, 0.95),
        p99Ms: quantile(lat, 0.99),
        maxMs: lat[lat.length - 1],
      });
    }
    return out.sort((a, b) => b.count - a.count || a.path.localeCompare(b.path));
  }
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

type TopOutput = 'table' | 'wide' | 'json' | 'yaml';

/** The rows as a table; `wide` adds the failed count, p95 and the slowest request. */
export function topTable(rows: TopRow[], wide = false): string {
  return formatTable(
    [
      'SOURCE',
      'DESTINATION',
      'METHOD',
      'PATH',
      'COUNT',
      'SUCCESS',
      'P50',
      'P99',
      ...(wide ? ['FAILED', 'P95', 'MAX'] : []),
    ],
    rows.map((r) => [
      r.source,
      r.destination,
      r.method,
      r.path,
      String(r.count),
      `${(r.successRate * 100).toFixed(2)}%`,
      `${r.p50Ms}ms`,
      `${r.p99Ms}ms`,
      ...(wide ? [String(r.failed), `${r.p95Ms}ms`, `${r.maxMs}ms`] : []),
    ]),
  );
}

export function topCommand(): Command {
  return tapOptions(
    new Command('top')
      .description('the busiest paths through a service right now (from tap, sliding 10 s)')
      .argument('<service>'),
  )
    .option('--rate <n>', 'tap events per second per proxy (default 100)')
    .option('--once', 'watch for --for, print once, exit')
    .option('--for <duration>', 'with --once: how long to watch', '5s')
    .addOption(
      new Option('-o, --output <format>', 'output format: table | wide | json | yaml')
        .choices(['table', 'wide', 'json', 'yaml'])
        .default('table'),
    )
    .action(async (service: string, f: TapFlags & { once?: boolean; for: string; output: TopOutput }) => {
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const win = new TopWindow();
      let timer: NodeJS.Timeout | undefined;
      try {
        const forMs = parseDuration(f.for);
        if (forMs === undefined || forMs <= 0)
          throw new UsageError(`--for must be a duration like 5s (got ${JSON.stringify(f.for)})`);
        const frames = new FrameWriter();
        if (f.once) timer = setTimeout(stop, forMs);
        else if (f.output === 'table' || f.output === 'wide')
          timer = setInterval(
            () =>
              frames.write(
                `hexmesh top ${service}: ${win.events} events, ${win.dropped} dropped    ${new Date().toISOString()}`,
                topTable(win.rows(), f.output === 'wide'),
              ),
            1000,
          );
        else if (f.output === 'json')
          timer = setInterval(
            () => process.stdout.write(`${JSON.stringify({ service, rows: win.rows() })}\n`),
            1000,
          );
        else
          timer = setInterval(
            () => process.stdout.write(`---\n${formatData({ service, rows: win.rows() }, 'yaml')}`),
            1000,
          );
        const client = openControlClient(f);
        try {
          await streamTap(client, tapQuery(service, f), (l) => win.add(l), ac.signal);
        } finally {
          await client.destroy();
        }
        if (f.once) {
          const rows = win.rows();
          const view = { service, windowMs: win.windowMs, events: win.events, dropped: win.dropped, rows };
          process.stdout.write(
            f.output === 'json' || f.output === 'yaml'
              ? formatData(view, f.output)
              : topTable(rows, f.output === 'wide'),
          );
        }
        process.exitCode = EXIT.OK;
      } catch (err) {
        const { code, message } = describeFailure(err);
        process.stderr.write(`hexmesh top: ${message}\n`);
        process.exitCode = code;
      } finally {
        clearTimeout(timer);
        clearInterval(timer);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
