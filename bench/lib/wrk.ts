/**
 * Closed-loop maximum throughput with wrk (Debian `wrk`), run as its own process.
 */
import type { ProcessGroup } from './process-group.ts';

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  /** Non-2xx/3xx responses plus socket errors (connect, read, write, timeout). */
  errors: number;
  /** wrk's own latency percentiles in ms (closed loop: for reference only). */
  p50: number;
  p99: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function toMs(text: string | undefined): number {
  const m = text?.match(/^([\d.]+)(us|ms|s|m)$/);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

/** Parse wrk's text report; throws naming what is missing. */
export function parseWrk(out: string): WrkResult {
  const req = out.match(/(\d+) requests in ([\d.]+)(us|ms|s|m),/);
  const rps = out.match(/Requests\/sec:\s+([\d.]+)/);
  if (!req || !rps) throw new Error(`cannot parse wrk output:\n${out.slice(-800)}`);
  const non2xx = Number(out.match(/Non-2xx or 3xx responses:\s+(\d+)/)?.[1] ?? 0);
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const sockErrors = sock ? sock.slice(1, 5).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    requests: Number(req[1]),
    durationS: toMs(`${req[2]}${req[3]}`) / 1000,
    rps: Number(rps[1]),
    errors: non2xx + sockErrors,
    p50: toMs(out.match(/\n\s+50%\s+(\S+)/)?.[1]),
    p99: toMs(out.match(/\n\s+99%\s+(\S+)/)?.[1]),
  };
}

export interface WrkOptions {
  url: string;
  host: string;
  connections: number;
  durationS: number;
  threads?: number;
}

/** Run wrk to completion (bounded by its duration plus a margin) and parse its report. */
export async function runWrk(group: ProcessGroup, o: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${o.threads ?? 1}`,
    `-c${o.connections}`,
    `-d${o.durationS}s`,
    '--latency',
    '--timeout',
    '5s',
  ];
  if (o.host) args.push('-H', `Host: ${o.host}`);
  args.push(o.url);
  const p = group.start('wrk', 'wrk', args, { keepStdout: true });
  let out = '';
  p.child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const timer = setTimeout(() => p.child.kill('SIGKILL'), (o.durationS + 20) * 1000);
  const code = await p.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${p.tail().slice(-400)}${out.slice(-400)}`);
  return parseWrk(out);
}
