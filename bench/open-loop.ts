/**
 * Open-loop load generator: sends requests at a fixed rate whatever the responses do, and
 * measures each request's latency from its *intended* send time, so a stall shows up in
 * every request it delays (no coordinated omission, as wrk2 does). Debian has no wrk2,
 * hence this. Runs as its own process, on an undici Pool.
 *
 *   node --import tsx bench/open-loop.ts --url http://127.0.0.1:P/ --host upstream \
 *     --rate 1000 --duration 10 --connections 16 --warmup 2
 *
 * Protocol on stdio: after the warm-up it prints `{"event":"warm"}` and waits for a line
 * on stdin (so the caller can sample CPU counters exactly at the start), then runs the
 * measured phase and prints one JSON line: `{"event":"result", ...OpenLoopResult}`.
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { Pool } from 'undici';
import { percentile } from './lib/stats.ts';

export interface OpenLoopResult {
  rate: number;
  durationS: number;
  sent: number;
  completed: number;
  /** Non-2xx responses, transport errors and requests still pending at the deadline. */
  errors: number;
  firstError?: string;
  /** Latency percentiles in milliseconds from the intended send time. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** Completed requests per second over the measured phase. */
  achievedRps: number;
}

interface Options {
  url: string;
  host: string;
  rate: number;
  duration: number;
  connections: number;
  warmup: number;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { url: '', host: '', rate: 1000, duration: 10, connections: 16, warmup: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`missing value for ${k}`);
    if (k === '--url') o.url = v;
    else if (k === '--host') o.host = v;
    else if (k === '--rate') o.rate = Number(v);
    else if (k === '--duration') o.duration = Number(v);
    else if (k === '--connections') o.connections = Number(v);
    else if (k === '--warmup') o.warmup = Number(v);
    else throw new Error(`unknown option ${k}`);
  }
  if (!o.url) throw new Error('--url is required');
  for (const k of ['rate', 'duration', 'connections', 'warmup'] as const) {
    if (!Number.isFinite(o[k]) || o[k] < 0)
      throw new Error(`--${k} must be a non-negative number, got ${o[k]}`);
  }
  return o;
}

/** Run one open-loop phase; resolves once every request finished or the drain deadline passed. */
async function phase(pool: Pool, o: Options, durationS: number): Promise<OpenLoopResult> {
  const total = Math.round(o.rate * durationS);
  const intervalMs = 1000 / o.rate;
  const latencies = new Float64Array(total);
  const path = new URL(o.url).pathname;
  const headers = o.host ? { host: o.host } : {};
  let sent = 0;
  let completed = 0;
  let errors = 0;
  let firstError: string | undefined;
  let pending = 0;
  const start = performance.now();

  const fire = (intended: number): void => {
    pending++;
    pool
      .request({ path, method: 'GET', headers })
      .then(async (res) => {
        await res.body.dump({ limit: 1 << 20 });
        if (res.statusCode >= 200 && res.statusCode < 300)
          latencies[completed++] = performance.now() - intended;
        else {
          errors++;
          firstError ??= `HTTP ${res.statusCode}`;
        }
      })
      .catch((err: Error) => {
        errors++;
        firstError ??= err.message;
      })
      .finally(() => pending--);
  };

  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      // Send every request whose intended time has come; a late timer sends several at once.
      while (sent < total && start + sent * intervalMs <= now) fire(start + sent++ * intervalMs);
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * intervalMs - performance.now()));
      else resolve();
    };
    tick();
  });
  const sendEnd = performance.now();
  // Let stragglers finish, bounded: whatever is still pending then counts as an error.
  const deadline = sendEnd + 10_000;
  while (pending > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  if (pending > 0) {
    errors += pending;
    firstError ??= `${pending} requests still pending 10 s after the last send`;
  }
  const sorted = latencies.subarray(0, completed).sort();
  return {
    rate: o.rate,
    durationS,
    sent,
    completed,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: completed > 0 ? sorted[completed - 1] : NaN,
    achievedRps: completed / ((sendEnd - start) / 1000),
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const origin = new URL(o.url).origin;
  const pool = new Pool(origin, { connections: o.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  try {
    if (o.warmup > 0) await phase(pool, o, o.warmup);
    process.stdout.write('{"event":"warm"}\n');
    if (!process.stdin.isTTY) {
      const rl = createInterface({ input: process.stdin });
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 30_000);
        rl.once('line', () => {
          clearTimeout(t);
          resolve();
        });
        rl.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
      rl.close();
    }
    const result = await phase(pool, o, o.duration);
    process.stdout.write(`${JSON.stringify({ event: 'result', ...result })}\n`);
  } finally {
    await pool.destroy();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`open-loop: ${err.message}\n`);
    process.exit(1);
  },
);
