/**
 * The data-plane benchmark (design: shared/design/bench.md; how to read it: docs/benchmark.md).
 *
 *   npm run bench [-- --rounds 5 --duration 10 --tls --paths direct,hexmesh,haproxy]
 *   npm run bench:smoke     one short round; exits non-zero if any path fails
 *
 * Paths run interleaved (direct, hexmesh, haproxy, direct, …); every process started here
 * is stopped at the end, on error and on Ctrl-C.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { exitOnHelp, numberFlag } from './lib/cli-flags.ts';
import { machineInfo } from './lib/machine.ts';
import { ProcessGroup } from './lib/process-group.ts';
import { formatSummary, summarize, type Summary } from './lib/report.ts';
import { runRound, type RoundOptions, type RoundResult } from './lib/round.ts';
import { PROTOCOLS, type Protocol } from './lib/senders.ts';
import { makeCerts } from './lib/tls-certs.ts';
import { startDirect } from './paths/direct.ts';
import { startHaproxy } from './paths/haproxy.ts';
import { startHexmesh } from './paths/hexmesh.ts';
import { startNodeFloor, startNodeFloorLean } from './paths/node-floor.ts';
import { EXTRA_PATH_NAMES, PATH_NAMES, type PathName, type PathStarter } from './paths/path.ts';

const STARTERS: Record<PathName, PathStarter> = {
  direct: startDirect,
  hexmesh: startHexmesh,
  haproxy: startHaproxy,
  'node-floor': startNodeFloor,
  'node-floor-lean': startNodeFloorLean,
};
const HERE = import.meta.dirname;

const USAGE = `usage: node --import tsx bench/run.ts [options]
  --rounds N        interleaved rounds (default 5; 1 with --smoke)
  --duration S      seconds of each measured run, fixed-rate and max (default 10; 2 with --smoke)
  --warmup S        seconds of fixed-rate warm-up before measuring (default 2; 1 with --smoke)
  --rate R          fixed-rate requests per second (default 1000)
  --paths LIST      comma-separated subset of ${PATH_NAMES.join(',')} (default: all of them), or
                    ${EXTRA_PATH_NAMES.join(',')}: the minimal Node proxy pairs (lean: HTTP/1.1 only)
  --protocols LIST  comma-separated subset of ${PROTOCOLS.join(',')} (default: all)
  --tls             mutual TLS between the two proxies of each pair (HAProxy and hexmesh)
  --hop http1|http2 protocol between the hexmesh sidecars for HTTP/1 traffic (proxy.hopTransport;
                    default: the proxy's default)
  --stream-mib M    size of the streamed-body check, 0 to skip (default 100; 10 with --smoke)
  --settle S        seconds Node proxies idle at the end of each round, after its load, before
                    their settled memory is read; 0 skips it (default 12; 0 with --smoke)
  --out FILE        results JSON (default bench/results/<ISO date>.json)
  --smoke           one short round that only checks every path works
  --help`;

function options(): {
  round: RoundOptions;
  rounds: number;
  paths: PathName[];
  protocols: Protocol[];
  tls: boolean;
  hop: 'http1' | 'http2' | undefined;
  smoke: boolean;
  out: string;
} {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rate: { type: 'string' },
      paths: { type: 'string' },
      protocols: { type: 'string' },
      tls: { type: 'boolean', default: false },
      hop: { type: 'string' },
      'stream-mib': { type: 'string' },
      settle: { type: 'string' },
      out: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  exitOnHelp(values.help, USAGE);
  const smoke = values.smoke;
  const paths = (values.paths?.split(',').map((s) => s.trim()) ?? [...PATH_NAMES]) as PathName[];
  for (const p of paths)
    if (!PATH_NAMES.includes(p) && !EXTRA_PATH_NAMES.includes(p))
      throw new Error(
        `--paths: unknown path ${JSON.stringify(p)} (known: ${[...PATH_NAMES, ...EXTRA_PATH_NAMES].join(', ')})`,
      );
  const protocols = (values.protocols?.split(',').map((s) => s.trim()) ?? [...PROTOCOLS]) as Protocol[];
  for (const p of protocols) {
    if (!PROTOCOLS.includes(p))
      throw new Error(`--protocols: unknown protocol ${JSON.stringify(p)} (known: ${PROTOCOLS.join(', ')})`);
  }
  if (values.hop !== undefined && values.hop !== 'http1' && values.hop !== 'http2')
    throw new Error(`--hop must be http1 or http2, got ${JSON.stringify(values.hop)}`);
  const stamp = new Date().toISOString().replace(/:/g, '-').replace(/\..*/, 'Z');
  return {
    rounds: Math.floor(numberFlag('rounds', values.rounds, smoke ? 1 : 5, 1)),
    paths,
    protocols,
    tls: values.tls,
    hop: values.hop,
    smoke,
    out: values.out ? resolve(values.out) : join(HERE, 'results', `${stamp}${smoke ? '-smoke' : ''}.json`),
    round: {
      durationS: numberFlag('duration', values.duration, smoke ? 2 : 10, 1),
      warmupS: numberFlag('warmup', values.warmup, smoke ? 1 : 2, 0),
      rate: numberFlag('rate', values.rate, 1000, 1),
      fixedConnections: 16,
      maxConnections: 32,
      streamMiB: Math.floor(numberFlag('stream-mib', values['stream-mib'], smoke ? 10 : 100, 0)),
      settleS: numberFlag('settle', values.settle, smoke ? 0 : 12, 0),
      maxErrorRatio: 0.001,
    },
  };
}

/** Start the upstream app and read the ports it prints. */
async function startUpstream(group: ProcessGroup): Promise<{ port: number; h2Port: number }> {
  const p = group.start('upstream', process.execPath, ['--import', 'tsx', join(HERE, 'upstream.ts')], {
    keepStdout: true,
  });
  const rl = createInterface({ input: p.child.stdout! });
  try {
    return await new Promise((resolvePort, reject) => {
      const t = setTimeout(() => reject(new Error(`upstream did not start in 15 s: ${p.tail()}`)), 15_000);
      rl.once('line', (line) => {
        clearTimeout(t);
        resolvePort(JSON.parse(line) as { port: number; h2Port: number });
      });
      void p.exited.then((code) => reject(new Error(`upstream exited (${code}): ${p.tail()}`)));
    });
  } finally {
    rl.close();
  }
}

async function main(): Promise<number> {
  const o = options();
  const group = new ProcessGroup();
  const tmpDir = mkdtempSync(join(tmpdir(), 'hexmesh-bench-'));
  const stop = (sig: string): void => {
    console.error(`\n${sig}: stopping every benchmark process`);
    void group.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  const startedAt = new Date().toISOString();
  const rounds: RoundResult[] = [];
  const notes: string[] = [
    'upstream: node:http server in its own process, 1 KiB body (nginx is not installed here)',
    'max throughput: wrk -t1 -c32, closed loop (h2c and gRPC: bench/open-loop.ts --closed, 32 HTTP/2 connections, one stream in flight each); fixed rate: bench/open-loop.ts (16 connections), latency from the intended send time',
    'h2c and gRPC: HTTP/2 end to end (app → proxy → proxy → app); gRPC is unary with 64-byte requests and 1 KiB responses',
    `hops between the proxies: ${o.tls ? 'mutual TLS on both (ECDSA P-256, throw-away CA; hexmesh TLS 1.3 with SPIFFE identities)' : 'plaintext'}; bench.md's targets assume mTLS on both`,
    'proxy CPU and RSS are those of the proxy processes only (/proc/PID/stat utime+stime, VmRSS)',
  ];
  try {
    const machine = machineInfo();
    console.log(
      `hexmesh data-plane benchmark: ${o.rounds} round(s) × ${o.paths.join(', ')} × ${o.protocols.join(', ')}; ${o.round.durationS} s runs; ${machine.nproc} CPU ${machine.cpuModel}; node ${machine.node}; ${machine.haproxy}`,
    );
    const certs = o.tls ? makeCerts(tmpDir) : undefined;
    const upstream = await startUpstream(group);
    const base = {
      group,
      upstreamPort: upstream.port,
      upstreamH2Port: upstream.h2Port,
      tmpDir,
      certs,
      hop: o.hop,
      startTimeoutMs: 20_000,
    };
    const startFailures = new Map<string, number>();
    for (let round = 1; round <= o.rounds; round++) {
      for (const protocol of o.protocols) {
        for (const name of o.paths) {
          // A path that failed to start twice running will not start now: say so and move on.
          const key = `${name}/${protocol}`;
          if ((startFailures.get(key) ?? 0) >= 2) {
            rounds.push({ round, path: name, protocol, ok: false, error: 'skipped: failed to start twice' });
            continue;
          }
          const r = await runRound(round, name, STARTERS[name], { ...base, protocol }, group, o.round);
          rounds.push(r);
          startFailures.set(key, r.error?.startsWith('start failed') ? (startFailures.get(key) ?? 0) + 1 : 0);
          const line = r.ok
            ? `max ${r.max?.rps.toFixed(0)} rps, p50 ${r.fixed?.p50.toFixed(2)} ms, p99 ${r.fixed?.p99.toFixed(2)} ms` +
              (r.proxyNames?.length ? `, ${r.max?.cpuUsPerRequest.toFixed(0)} µs/req` : '')
            : `FAILED: ${r.error?.split('\n')[0]}`;
          console.log(`round ${round}/${o.rounds} ${protocol.padEnd(5)} ${name.padEnd(7)} ${line}`);
        }
      }
    }
    const summary: Partial<Record<Protocol, Summary>> = {};
    for (const protocol of o.protocols) {
      const s = summarize(
        rounds.filter((r) => r.protocol === protocol),
        o.paths,
      );
      summary[protocol] = s;
      console.log(`\n== ${protocol} ==\n${formatSummary(s)}`);
    }
    console.log(`\nNotes:\n${notes.map((n) => `- ${n}`).join('\n')}`);
    mkdirSync(resolve(o.out, '..'), { recursive: true });
    writeFileSync(
      o.out,
      `${JSON.stringify({ startedAt, finishedAt: new Date().toISOString(), options: { ...o, out: undefined }, machine, notes, summary, rounds }, null, 2)}\n`,
    );
    console.log(`\nresults: ${o.out}`);
    const failed = rounds.filter((r) => !r.ok);
    if (o.smoke && failed.length > 0) {
      console.error(
        `smoke: ${failed.length} path round(s) failed: ${[...new Set(failed.map((r) => r.path))].join(', ')}`,
      );
      return 1;
    }
    return 0;
  } finally {
    await group.close();
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`bench: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
