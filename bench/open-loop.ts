/**
 * Open-loop load generator: sends requests at a fixed rate whatever the responses do, and
 * measures each request's latency from its *intended* send time, so a stall shows up in
 * every request it delays (no coordinated omission, as wrk2 does). Debian has no wrk2,
 * hence this. Runs as its own process (HTTP/1.1 on an undici Pool; see lib/senders.ts).
 *
 *   node --import tsx bench/open-loop.ts --url http://127.0.0.1:P/ --host upstream \
 *     --rate 1000 --duration 10 --connections 16 --warmup 2 [--protocol http1|h2c|grpc]
 *
 * With `--closed`, it runs a closed loop instead (one request in flight per connection,
 * as wrk does), for the protocols wrk does not speak; latency is then per request.
 *
 * Protocol on stdio: after the warm-up it prints `{"event":"warm"}` and waits for a line
 * on stdin (so the caller can sample CPU counters exactly at the start), then runs the
 * measured phase and prints one JSON line: `{"event":"result", ...OpenLoopResult}`.
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { makeSender, PROTOCOLS, type Protocol, type Sender } from './lib/senders.ts';
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
  protocol: Protocol;
  closed: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    url: '',
    host: '',
    rate: 1000,
    duration: 10,
    connections: 16,
    warmup: 0,
    protocol: 'http1',
    closed: false,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    if (k === '--closed') {
      o.closed = true;
      i--;
      continue;
    }
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`missing value for ${k}`);
    if (k === '--url') o.url = v;
    else if (k === '--host') o.host = v;
    else if (k === '--rate') o.rate = Number(v);
    else if (k === '--duration') o.duration = Number(v);
    else if (k === '--connections') o.connections = Number(v);
    else if (k === '--warmup') o.warmup = Number(v);
    else if (k === '--protocol') {
      if (!PROTOCOLS.includes(v as Protocol))
        throw new Error(`--protocol must be one of ${PROTOCOLS.join(', ')}, got ${v}`);
      o.protocol = v as Protocol;
    } else throw new Error(`unknown option ${k}`);
  }
  if (!o.url) throw new Error('--url is required');
  for (const k of ['rate', 'duration', 'connections', 'warmup'] as const) {
    if (!Number.isFinite(o[k]) || o[k] < 0)
      throw new Error(`--${k} must be a non-negative number, got ${o[k]}`);
  }
  return o;
}

/** Run one open-loop phase; resolves once every request finished or the drain deadline passed. */
async function phase(sender: Sender, o: Options, durationS: number): Promise<OpenLoopResult> {
  const total = Math.round(o.rate * durationS);
  const intervalMs = 1000 / o.rate;
  const latencies = new Float64Array(total);
  let sent = 0;
  let completed = 0;
  let errors = 0;
  let firstError: string | undefined;
  let pending = 0;
  const start = performance.now();

  const fire = (intended: number): void => {
    pending++;
    void sender.send().then((err) => {
      pending--;
      if (err === null) latencies[completed++] = performance.now() - intended;
      else {
        errors++;
        firstError ??= err;
      }
    });
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
  return result(o.rate, durationS, sent, completed, errors, firstError, latencies, (sendEnd - start) / 1000);
}

/** Closed loop: `connections` workers, each sending its next request when the last ends. */
async function closedPhase(sender: Sender, o: Options, durationS: number): Promise<OpenLoopResult> {
  const latencies: number[] = [];
  let sent = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const end = start + durationS * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const t = performance.now();
      sent++;
      const err = await sender.send();
      if (err === null) latencies.push(performance.now() - t);
      else {
        errors++;
        firstError ??= err;
        // A failing path must not spin: back off a little.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: o.connections }, worker));
  const wallS = (performance.now() - start) / 1000;
  return result(
    0,
    durationS,
    sent,
    latencies.length,
    errors,
    firstError,
    Float64Array.from(latencies),
    wallS,
  );
}

function result(
  rate: number,
  durationS: number,
  sent: number,
  completed: number,
  errors: number,
  firstError: string | undefined,
  latencies: Float64Array,
  wallS: number,
): OpenLoopResult {
  const sorted = latencies.subarray(0, completed).sort();
  return {
    rate,
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
    achievedRps: completed / wallS,
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const sender = makeSender(o.protocol, o.url, o.host, o.connections);
  const run = o.closed ? closedPhase : phase;
  try {
    if (o.warmup > 0) await run(sender, o, o.warmup);
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
    const r = await run(sender, o, o.duration);
    process.stdout.write(`${JSON.stringify({ event: 'result', ...r })}\n`);
  } finally {
    await sender.close();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`open-loop: ${err.message}\n`);
    process.exit(1);
  },
);
