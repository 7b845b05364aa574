/**
 * The control-plane benchmark (design: shared/design/bench.md "Control-plane benchmark";
 * how to read it: docs/benchmark.md).
 *
 *   npm run bench:control [-- --sizes 100,1000,5000 --etcd]
 *   npm run bench:control -- --smoke     a tiny quick run
 *
 * Per size: a fresh control plane process over a copy of the seeded catalog, N simulated
 * proxies in worker processes, then endpoint changes timed from the write to each
 * subscriber's receipt. Every process started here is stopped at the end, on error and on
 * Ctrl-C; every wait is bounded.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { exitOnHelp, intFlag } from '../lib/cli-flags.ts';
import { machineInfo, type MachineInfo } from '../lib/machine.ts';
import { ProcessGroup } from '../lib/process-group.ts';
import { cpuSeconds, machineTicks, rssKiB } from '../lib/proc-stats.ts';
import { percentile } from '../lib/stats.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { EMBEDDED_DB_FILE } from '../../src/store/open-store.ts';
import { startControl } from './control-process.ts';
import { seedCatalog, serviceName } from './seed.ts';
import { SubscriberWorker } from './subscribers.ts';

const HERE = import.meta.dirname;
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const USAGE = `usage: node --import tsx bench/control/run.ts [options]
  --sizes LIST        subscriber counts (default 100,1000,5000; 20 with --smoke)
  --services N        seeded services (default 1000; 20 with --smoke)
  --instances N       instances per service (default 10; 5 with --smoke)
  --per-proxy N       destinations per proxy besides the hot one (default 3)
  --changes N         endpoint changes per size (default 20; 3 with --smoke)
  --warmup-changes N  unmeasured changes first, so the server's code paths are warm (default 5; 1 with --smoke)
  --spacing MS        time between changes (default 200)
  --idle S            seconds of idle CPU measurement (default 10; 1 with --smoke)
  --workers N         subscriber worker processes (default 2)
  --concurrency N     handshakes in flight per worker while connecting (default 50)
  --cpu-prof DIR      write a V8 CPU profile of each control plane process into DIR
  --tsx               run the control plane from the sources through tsx, not the dist/ bundle
  --etcd              run the control plane over a local single-member etcd instead of SQLite
  --out FILE          results JSON (default bench/results/control-<ISO date>.json)
  --smoke             tiny quick run
  --help`;

interface Options {
  sizes: number[];
  services: number;
  instances: number;
  perProxy: number;
  changes: number;
  warmupChanges: number;
  spacing: number;
  idleSeconds: number;
  workers: number;
  concurrency: number;
  etcd: boolean;
  cpuProf: string | undefined;
  tsx: boolean;
  smoke: boolean;
  out: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string' },
      services: { type: 'string' },
      instances: { type: 'string' },
      'per-proxy': { type: 'string' },
      changes: { type: 'string' },
      spacing: { type: 'string' },
      'warmup-changes': { type: 'string' },
      idle: { type: 'string' },
      workers: { type: 'string' },
      concurrency: { type: 'string' },
      etcd: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      tsx: { type: 'boolean', default: false },
      out: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  exitOnHelp(values.help, USAGE);
  const smoke = values.smoke;
  const sizes = (values.sizes ?? (smoke ? '20' : '100,1000,5000'))
    .split(',')
    .map((s) => intFlag('sizes', s.trim(), 0, 1));
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(':', '-');
  const o: Options = {
    sizes,
    services: intFlag('services', values.services, smoke ? 20 : 1000, 1),
    instances: intFlag('instances', values.instances, smoke ? 5 : 10, 1),
    perProxy: intFlag('per-proxy', values['per-proxy'], 3, 0),
    changes: intFlag('changes', values.changes, smoke ? 3 : 20, 1),
    warmupChanges: intFlag('warmup-changes', values['warmup-changes'], smoke ? 1 : 5, 0),
    spacing: intFlag('spacing', values.spacing, 200, 0),
    idleSeconds: intFlag('idle', values.idle, smoke ? 1 : 10, 1),
    workers: intFlag('workers', values.workers, 2, 1),
    concurrency: intFlag('concurrency', values.concurrency, 50, 1),
    etcd: values.etcd,
    tsx: values.tsx,
    cpuProf: values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined,
    smoke,
    out: values.out
      ? resolve(values.out)
      : join(HERE, '..', 'results', `control-${stamp}${smoke ? '-smoke' : ''}.json`),
  };
  if (o.changes + o.warmupChanges > 1000) throw new Error('--changes + --warmup-changes must be ≤ 1000');
  return o;
}

/** Everything measured at one subscriber count. */
export interface SizeResult {
  subscribers: number;
  ok: boolean;
  error?: string;
  controlStartSeconds?: number;
  /** Wall time to connect every subscriber (bounded concurrency, see --concurrency). */
  connectSeconds?: number;
  connectFailed?: number;
  /** ms from opening the WebSocket to the first snapshot. */
  fullConfigMs?: { p50: number; p99: number; max: number };
  /** ms from the write (before the REST call) to each subscriber's receipt, over all (subscriber, change) pairs. */
  propagationMs?: { p50: number; p99: number; max: number; n: number; missing: number };
  /** Per change: p99 over the subscribers (ms). */
  perChangeP99Ms?: number[];
  /** ms of each change's REST write (register answer). */
  writeMs?: { p50: number; max: number };
  rssMB?: { beforeSubscribers: number; connected: number; afterChanges: number; peak: number };
  /** Control-plane CPU with every subscriber connected and nothing changing, % of one core. */
  idleCpuPct?: number;
  /** Control-plane CPU per change, minus idle, µs (and per subscriber reached). */
  cpuUsPerChange?: number;
  cpuUsPerChangePerSubscriber?: number;
  stealPct?: number;
  dropped?: number;
  errors?: string[];
}

const MB = 1e6;
const kibToMB = (k: number): number => (k * 1024) / MB;
const round1 = (x: number): number => Math.round(x * 10) / 10;

async function jsonRequest(method: string, url: string, body: unknown, timeoutMs = 30_000): Promise<unknown> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

async function runSize(
  o: Options,
  group: ProcessGroup,
  n: number,
  sizeIndex: number,
  dataDir: string,
  store: string | undefined,
): Promise<SizeResult> {
  const r: SizeResult = { subscribers: n, ok: false };
  const errors = new Set<string>();
  const cp = await startControl(group, {
    dataDir,
    store,
    nodeArgs: o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : [],
    viaTsx: o.tsx,
  });
  const pid = cp.proc.pid;
  r.controlStartSeconds = round1(cp.startSeconds);
  let peak = 0;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssKiB(pid));
    } catch {
      /* exited */
    }
  }, 200);
  const workers: SubscriberWorker[] = [];
  try {
    // The discovery mirror loads the whole catalog after listening: let it settle.
    await sleep(o.smoke ? 300 : 2000);
    const rssBefore = rssKiB(pid);
    const hot = serviceName(0);
    const portBase = 40_000 + sizeIndex * 1000;
    for (let w = 0; w < Math.min(o.workers, n); w++)
      workers.push(await SubscriberWorker.start(group, `subscribers-${w}`));
    const per = Math.ceil(n / workers.length);
    const wsUrl = `${cp.baseUrl.replace(/^http/, 'ws')}/v1/discovery`;
    const t0 = performance.now();
    const connectTimeoutMs = 60_000;
    const connected = await Promise.all(
      workers.map((w, i) =>
        w.connect(
          {
            type: 'connect',
            url: wsUrl,
            count: Math.max(0, Math.min(per, n - i * per)),
            firstId: i * per,
            concurrency: o.concurrency,
            services: o.services,
            perProxy: o.perProxy,
            hot,
            portBase,
            changes: o.warmupChanges + o.changes,
            connectTimeoutMs,
          },
          // Bounded: every handshake has its own timeout; this covers the whole ramp.
          Math.max(120_000, (per / o.concurrency) * connectTimeoutMs),
        ),
      ),
    );
    r.connectSeconds = round1((performance.now() - t0) / 1000);
    const full = connected.flatMap((c) => c.fullConfigMs);
    for (const c of connected) for (const e of c.errors) errors.add(e);
    const okFull = full.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    r.connectFailed = full.length - okFull.length;
    r.fullConfigMs = {
      p50: round1(percentile(okFull, 0.5)),
      p99: round1(percentile(okFull, 0.99)),
      max: round1(okFull[okFull.length - 1] ?? NaN),
    };

    // Idle: every subscriber connected, nothing changing (pings and lease keep-alives only).
    await sleep(o.smoke ? 300 : 2000);
    r.rssMB = {
      beforeSubscribers: round1(kibToMB(rssBefore)),
      connected: round1(kibToMB(rssKiB(pid))),
      afterChanges: NaN,
      peak: NaN,
    };
    const idleCpu0 = cpuSeconds(pid);
    const idleT0 = performance.now();
    await sleep(o.idleSeconds * 1000);
    const idleRate = (cpuSeconds(pid) - idleCpu0) / ((performance.now() - idleT0) / 1000);
    r.idleCpuPct = round1(idleRate * 100);

    // Changes: register a new endpoint of the hot service every `spacing` ms (open loop);
    // the first `warmupChanges` are not measured.
    const W = o.warmupChanges;
    const total = W + o.changes;
    const writeAt: number[] = [];
    const writeMs: number[] = [];
    const change = (i: number): Promise<void> => {
      const at = now();
      writeAt[i] = at;
      return jsonRequest('PUT', `${cp.baseUrl}/v1/catalog/register`, {
        id: `bench-change-${sizeIndex}-${i}`,
        service: hot,
        namespace: 'default',
        address: '127.0.0.2',
        port: portBase + i,
        meshPort: portBase + i,
        checks: [],
        ttl: '10m',
      }).then(() => {
        writeMs[i] = now() - at;
      });
    };
    /** Every subscriber still connected has seen change `c` (bounded wait). */
    const allSeen = async (c: number, timeoutMs: number): Promise<number> => {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const prog = await Promise.all(
          workers.map((w) => w.request({ type: 'progress', change: c }, 'progress', 10_000)),
        );
        const seen = prog.reduce((a, p) => a + p.seen, 0);
        const dropped = prog.reduce((a, p) => a + p.dropped, 0);
        if (seen + dropped >= okFull.length || performance.now() > deadline) return dropped;
        await sleep(50);
      }
    };
    const warm: Promise<void>[] = [];
    for (let i = 0; i < W; i++) {
      warm.push(change(i));
      await sleep(o.spacing);
    }
    await Promise.all(warm);
    if (W > 0) await allSeen(W - 1, 10_000);
    const ticks0 = machineTicks();
    const cpu0 = cpuSeconds(pid);
    const phaseT0 = performance.now();
    const writes: Promise<void>[] = [];
    for (let i = W; i < total; i++) {
      const wait = phaseT0 + (i - W) * o.spacing - performance.now();
      if (wait > 0) await sleep(wait);
      writes.push(change(i));
    }
    await Promise.all(writes);
    await allSeen(total - 1, o.smoke ? 10_000 : 30_000);
    const phaseSeconds = (performance.now() - phaseT0) / 1000;
    const phaseCpu = cpuSeconds(pid) - cpu0;
    const ticks1 = machineTicks();
    const netCpu = Math.max(0, phaseCpu - idleRate * phaseSeconds);
    r.cpuUsPerChange = Math.round((netCpu / o.changes) * 1e6);
    r.cpuUsPerChangePerSubscriber = round1(r.cpuUsPerChange / Math.max(1, okFull.length));
    r.stealPct = round1(((ticks1.steal - ticks0.steal) / Math.max(1, ticks1.total - ticks0.total)) * 100);
    const ws = writeMs
      .slice(W)
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    r.writeMs = { p50: round1(percentile(ws, 0.5)), max: round1(ws[ws.length - 1] ?? NaN) };

    const reports = await Promise.all(workers.map((w) => w.request({ type: 'report' }, 'report', 30_000)));
    const lat: number[] = [];
    let missing = 0;
    r.perChangeP99Ms = [];
    for (let c = W; c < total; c++) {
      const per: number[] = [];
      for (const rep of reports)
        for (const t of rep.receipts[c]) {
          if (Number.isNaN(t)) missing++;
          else per.push(t - writeAt[c]);
        }
      per.sort((a, b) => a - b);
      r.perChangeP99Ms.push(round1(percentile(per, 0.99)));
      for (const x of per) lat.push(x);
    }
    for (const rep of reports) for (const e of rep.errors) errors.add(e);
    lat.sort((a, b) => a - b);
    // Subscribers whose connect failed never count as missing; the rest do.
    missing -= r.connectFailed * o.changes;
    r.propagationMs = {
      p50: round1(percentile(lat, 0.5)),
      p99: round1(percentile(lat, 0.99)),
      max: round1(lat[lat.length - 1] ?? NaN),
      n: lat.length,
      missing,
    };
    r.dropped = reports.reduce((a, p) => a + p.dropped, 0);
    r.rssMB.afterChanges = round1(kibToMB(rssKiB(pid)));
    r.rssMB.peak = round1(kibToMB(peak));
    r.ok = r.connectFailed === 0 && missing === 0 && r.dropped === 0;
    if (!r.ok)
      r.error = `connect failed ${r.connectFailed}, missing receipts ${missing}, dropped ${r.dropped}`;
  } catch (err) {
    r.error = (err as Error).message.split('\n').slice(0, 6).join('\n');
  } finally {
    clearInterval(sampler);
    await Promise.all(workers.map((w) => w.close(group)));
    await group.stop(cp.proc, 10_000);
  }
  r.errors = [...errors].slice(0, 10);
  return r;
}

interface TargetRow {
  figure: string;
  value: number;
  unit: string;
  target: string;
  pass: boolean | undefined;
}

function targets(results: SizeResult[]): TargetRow[] {
  const at1000 = results.find((r) => r.subscribers === 1000 && r.ok);
  const v = (x: number | undefined): number => x ?? NaN;
  return [
    {
      figure: 'endpoint change to 1,000 subscribers, p99',
      value: v(at1000?.propagationMs?.p99),
      unit: 'ms',
      target: '≤ 250 ms',
      pass: at1000 ? v(at1000.propagationMs?.p99) <= 250 : undefined,
    },
    {
      figure: 'control plane RSS at 1,000 subscribers (peak)',
      value: v(at1000?.rssMB?.peak),
      unit: 'MB',
      target: '≤ 300 MB',
      pass: at1000 ? v(at1000.rssMB?.peak) <= 300 : undefined,
    },
  ];
}

function table(o: Options, seedSeconds: number, results: SizeResult[]): string {
  const f = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '—' : String(x));
  const lines = [
    `catalog: ${o.services} services × ${o.instances} instances = ${o.services * o.instances} endpoints, seeded in ${seedSeconds.toFixed(1)} s (direct store writes, ${o.etcd ? 'etcd' : 'SQLite'})`,
    `each proxy: hello + ${o.perProxy + 1} destinations (the hot one, ${serviceName(0)}, and ${o.perProxy} spread) + its own; ${o.changes} changes ${o.spacing} ms apart (a new endpoint registered through the REST API)`,
    '',
    '| subscribers | connect all (s) | full config p50 / p99 (ms) | change → all p50 / p99 / max (ms) | CPU idle (% core) | CPU µs per change (per subscriber) | RSS before / connected / peak (MB) | steal % | status |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results)
    lines.push(
      `| ${r.subscribers} | ${f(r.connectSeconds)} | ${f(r.fullConfigMs?.p50)} / ${f(r.fullConfigMs?.p99)} | ${f(r.propagationMs?.p50)} / ${f(r.propagationMs?.p99)} / ${f(r.propagationMs?.max)} | ${f(r.idleCpuPct)} | ${f(r.cpuUsPerChange)} (${f(r.cpuUsPerChangePerSubscriber)}) | ${f(r.rssMB?.beforeSubscribers)} / ${f(r.rssMB?.connected)} / ${f(r.rssMB?.peak)} | ${f(r.stealPct)} | ${r.ok ? 'ok' : `FAILED: ${r.error}`} |`,
    );
  lines.push('', '| target | value | target | result |', '|---|---|---|---|');
  for (const t of targets(results))
    lines.push(
      `| ${t.figure} | ${f(t.value)} ${t.unit} | ${t.target} | ${t.pass === undefined ? 'not measured' : t.pass ? 'PASS' : 'FAIL'} |`,
    );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = options();
  const group = new ProcessGroup();
  const onSignal = (): void => {
    void group.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const root = mkdtempSync(join(tmpdir(), 'hexmesh-bench-control-'));
  let etcd: { stop(): Promise<void>; endpoints: string[] } | undefined;
  const results: SizeResult[] = [];
  let seedSeconds: number;
  let machine: MachineInfo | undefined;
  try {
    machine = machineInfo();
    const shape = { services: o.services, instancesPerService: o.instances };
    let storeUrl: string | undefined;
    const template = join(root, 'template');
    mkdirSync(template);
    if (o.etcd) {
      const { EtcdCluster } = await import('../../test/support/etcd-cluster.ts');
      etcd = await EtcdCluster.start(1);
      storeUrl = `etcd://${etcd.endpoints.map((e) => e.replace(/^http:\/\//, '')).join(',')}`;
      const { EtcdStore } = await import('../../src/store/etcd-store.ts');
      const s = await EtcdStore.connect(etcd.endpoints);
      try {
        seedSeconds = await seedCatalog(s, shape, 64);
      } finally {
        await s.close();
      }
    } else {
      const s = await SqliteStore.open(join(template, EMBEDDED_DB_FILE));
      try {
        seedSeconds = await seedCatalog(s, shape);
      } finally {
        await s.close();
      }
    }
    console.log(`seeded ${o.services * o.instances} endpoints in ${seedSeconds.toFixed(1)} s`);
    for (const [i, n] of o.sizes.entries()) {
      // A fresh control plane per size over a copy of the seeded catalog (SQLite) or the same etcd.
      const dir = join(root, `size-${i}`);
      mkdirSync(dir);
      if (!o.etcd)
        for (const f of readdirSync(template))
          if (!f.endsWith('.lock')) cpSync(join(template, f), join(dir, f));
      console.log(`\n${n} subscribers…`);
      const r = await runSize(o, group, n, i, dir, storeUrl);
      results.push(r);
      console.log(
        r.ok
          ? `  full config p99 ${r.fullConfigMs?.p99} ms, change → all p99 ${r.propagationMs?.p99} ms, peak RSS ${r.rssMB?.peak} MB`
          : `  FAILED: ${r.error}`,
      );
    }
  } finally {
    await group.close();
    await etcd?.stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
  const report = table(o, seedSeconds, results);
  console.log(`\n${report}`);
  mkdirSync(join(o.out, '..'), { recursive: true });
  writeFileSync(
    o.out,
    JSON.stringify({ options: o, machine, seedSeconds, results, targets: targets(results) }, null, 2) + '\n',
  );
  console.log(`\nresults: ${o.out}`);
  process.exitCode = results.every((r) => r.ok) ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
