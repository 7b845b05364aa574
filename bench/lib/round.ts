/**
 * One round of one path: start it, measure idle memory, the fixed-rate run (latency,
 * vCPU, memory after), the max-throughput run (CPU per request), the large streamed body,
 * and stop it.
 */
import type { OpenLoopResult } from '../open-loop.ts';
import type { PathContext, PathName, PathStarter } from '../paths/path.ts';
import { runOpenLoop } from './open-loop-runner.ts';
import type { GcStats } from './gc-trace.ts';
import { cpuSeconds, machineTicks, rssKiB, ussKiB } from './proc-stats.ts';
import type { ProcessGroup } from './process-group.ts';
import type { Protocol } from './senders.ts';
import { streamBody, type StreamResult } from './stream-body.ts';
import { runWrk, type WrkResult } from './wrk.ts';

export interface RoundOptions {
  durationS: number;
  warmupS: number;
  rate: number;
  fixedConnections: number;
  maxConnections: number;
  /** 0 skips the streamed-body check. */
  streamMiB: number;
  /**
   * Seconds Node proxies are left idle at the end of a round, after its load, before their
   * settled memory is read (0: not read). V8 keeps the young generation that start-up or load
   * grew until its memory reducer runs, 5–10 s into idleness.
   */
  settleS: number;
  /** Fraction of failed requests above which the round counts as failed. */
  maxErrorRatio: number;
}

export interface RoundResult {
  round: number;
  path: PathName;
  protocol: Protocol;
  /** Tool behind the max-throughput figure: wrk for HTTP/1.1, bench/open-loop.ts --closed otherwise. */
  maxTool?: string;
  ok: boolean;
  error?: string;
  hop?: string;
  proxyNames?: string[];
  /** RSS per proxy (client side first), KiB. */
  rssIdleKiB?: number[];
  rssAfterFixedKiB?: number[];
  rssAfterMaxKiB?: number[];
  /** RSS and USS per proxy after the round's load and `settleS` seconds of idleness, Node proxies only, KiB. */
  rssSettledKiB?: number[];
  ussSettledKiB?: number[];
  /** Private memory (USS) per proxy, KiB. */
  ussIdleKiB?: number[];
  ussAfterFixedKiB?: number[];
  /** GC pauses per proxy during the measured fixed-rate phase and the max-throughput run. */
  gcFixed?: GcStats[];
  gcMax?: GcStats[];
  fixed?: OpenLoopResult & {
    /** CPU seconds of each proxy during the measured fixed-rate phase. */
    proxyCpuS: number[];
    wallS: number;
    /** vCPU used by both proxies together per 1000 completed requests per second. */
    vcpuPer1000Rps: number;
    stealPct: number;
  };
  max?: WrkResult & {
    proxyCpuS: number[];
    /** CPU µs of both proxies together per completed request. */
    cpuUsPerRequest: number;
    stealPct: number;
  };
  stream?: StreamResult;
  streamError?: string;
}

const cpuOf = (pids: readonly number[]): number[] => pids.map((p) => cpuSeconds(p));
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
const stealPct = (a: { total: number; steal: number }, b: { total: number; steal: number }): number =>
  b.total > a.total ? (100 * (b.steal - a.steal)) / (b.total - a.total) : 0;

/** wrk for HTTP/1.1; wrk has no HTTP/2, so the Node generator in closed-loop mode otherwise. */
async function maxThroughput(
  group: ProcessGroup,
  origin: string,
  host: string,
  protocol: Protocol,
  o: RoundOptions,
): Promise<WrkResult> {
  if (protocol === 'http1')
    return runWrk(group, { url: `${origin}/`, host, connections: o.maxConnections, durationS: o.durationS });
  const c = await runOpenLoop(group, {
    origin,
    host,
    protocol,
    closed: true,
    rate: 0,
    durationS: o.durationS,
    connections: o.maxConnections,
    warmupS: 0,
    atStart: () => {},
    atEnd: () => {},
  });
  return {
    requests: c.completed,
    durationS: c.durationS,
    rps: c.achievedRps,
    errors: c.errors,
    p50: c.p50,
    p99: c.p99,
  };
}

export async function runRound(
  round: number,
  name: PathName,
  start: PathStarter,
  ctx: PathContext,
  group: ProcessGroup,
  o: RoundOptions,
): Promise<RoundResult> {
  const r: RoundResult = { round, path: name, protocol: ctx.protocol, ok: false };
  let path;
  try {
    path = await start(ctx);
  } catch (err) {
    r.error = `start failed: ${(err as Error).message}`;
    return r;
  }
  try {
    r.hop = path.hop;
    r.proxyNames = path.proxies.map((p) => p.name);
    const pids = path.proxies.map((p) => p.pid);
    // A moment for start-up work (module loading, JIT of the first requests) to settle.
    await new Promise((res) => setTimeout(res, 300));
    r.rssIdleKiB = pids.map(rssKiB);
    r.ussIdleKiB = pids.map(ussKiB);
    const gc = path.gc ?? [];

    let cpu0: number[] = [];
    let cpu1: number[] = [];
    let t0 = 0;
    let t1 = 0;
    let m0 = machineTicks();
    let m1 = m0;
    const fixed = await runOpenLoop(group, {
      origin: path.origin,
      host: path.host,
      rate: o.rate,
      durationS: o.durationS,
      connections: o.fixedConnections,
      warmupS: o.warmupS,
      protocol: ctx.protocol,
      atStart: () => {
        for (const g of gc) g.begin();
        cpu0 = cpuOf(pids);
        m0 = machineTicks();
        t0 = performance.now();
      },
      atEnd: () => {
        if (gc.length) r.gcFixed = gc.map((g) => g.end());
        cpu1 = cpuOf(pids);
        m1 = machineTicks();
        t1 = performance.now();
      },
    });
    const proxyCpuS = cpu1.map((c, i) => c - cpu0[i]);
    const wallS = (t1 - t0) / 1000;
    r.fixed = {
      ...fixed,
      proxyCpuS,
      wallS,
      vcpuPer1000Rps: sum(proxyCpuS) / wallS / (fixed.achievedRps / 1000),
      stealPct: stealPct(m0, m1),
    };
    r.rssAfterFixedKiB = pids.map(rssKiB);
    r.ussAfterFixedKiB = pids.map(ussKiB);

    for (const g of gc) g.begin();
    cpu0 = cpuOf(pids);
    m0 = machineTicks();
    const max = await maxThroughput(group, path.origin, path.host, ctx.protocol, o);
    r.maxTool = ctx.protocol === 'http1' ? 'wrk' : 'open-loop --closed';
    cpu1 = cpuOf(pids);
    m1 = machineTicks();
    if (gc.length) r.gcMax = gc.map((g) => g.end());
    const maxCpu = cpu1.map((c, i) => c - cpu0[i]);
    r.max = {
      ...max,
      proxyCpuS: maxCpu,
      cpuUsPerRequest: (sum(maxCpu) * 1e6) / max.requests,
      stealPct: stealPct(m0, m1),
    };
    r.rssAfterMaxKiB = pids.map(rssKiB);

    const problems: string[] = [];
    if (fixed.errors > o.maxErrorRatio * fixed.sent) {
      problems.push(`fixed-rate: ${fixed.errors}/${fixed.sent} failed (first: ${fixed.firstError ?? '?'})`);
    }
    if (max.errors > o.maxErrorRatio * Math.max(1, max.requests))
      problems.push(`max-throughput: ${max.errors}/${max.requests} failed`);
    if (max.requests === 0) problems.push('max-throughput: no request completed');
    for (const p of path.proxies)
      if (p.hasExited()) problems.push(`${p.name} exited during the round:\n${p.tail().slice(-600)}`);

    if (o.streamMiB > 0 && ctx.protocol === 'http1' && problems.length === 0) {
      try {
        r.stream = await streamBody(path.origin, path.host, o.streamMiB, path.proxies, 120_000);
      } catch (err) {
        // Reported beside the round, not failing it: the core figures stand on their own.
        r.streamError = (err as Error).message;
      }
    }
    // Last, so the idle wait cannot change what the runs above measured (V8 shrinks the
    // young generation while idle, and a run that starts from the shrunk one scavenges more).
    if (o.settleS > 0 && gc.length > 0 && path.proxies.every((p) => !p.hasExited())) {
      await new Promise((res) => setTimeout(res, o.settleS * 1000));
      r.rssSettledKiB = pids.map(rssKiB);
      r.ussSettledKiB = pids.map(ussKiB);
    }
    r.ok = problems.length === 0;
    if (!r.ok) r.error = problems.join('; ');
  } catch (err) {
    r.error = (err as Error).message;
  } finally {
    await path.close();
  }
  return r;
}
