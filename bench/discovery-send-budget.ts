/**
 * Discovery send budget (issue 10): the control plane's peak RSS while stalled proxies ask for
 * snapshots they never read, with and without `--discovery-send-budget`. Not a test: the
 * figures depend on the machine.
 *
 *   npm run bench:discovery-budget -- [--proxies 6] [--budget 32] [--rounds 40] [--blob 1000]
 *
 * For each run (the default budget, then `--discovery-send-budget <budget>` MiB) it starts a
 * real `hexmesh control` process on loopback (fresh data dir, `--auth off`), stores a Service
 * whose annotations weigh `--blob` KiB (so every snapshot of it is about that big; the API
 * takes bodies up to 1 MiB), opens
 * `--proxies` raw WebSocket discovery streams that say hello for it and then stop reading
 * (their sockets paused), and has each ask for `--rounds` snapshots of it (`subscribe`).
 * A reader that keeps reading asks as often. The control plane's VmRSS is sampled every
 * 25 ms; its VmHWM is read at the end. Bounded in every step (rounds, timeouts).
 *
 * Prints, per run: RSS before the streams, peak RSS (sampled, and VmHWM), the snapshot data
 * asked for, how many stalled proxies the control plane cut (its log lines) and whether the
 * reader kept its stream.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { exitOnHelp, intFlag, numberFlag } from './lib/cli-flags.ts';
import { rssKiB } from './lib/proc-stats.ts';

const USAGE =
  'usage: npm run bench:discovery-budget -- [--proxies 6] [--budget 32] [--rounds 40] [--blob 1000]';
const BIN = resolve(import.meta.dirname, '..', 'bin', 'hexmesh.js');

interface RunResult {
  label: string;
  startMiB: number;
  peakMiB: number;
  hwmMiB: number;
  askedMiB: number;
  cut: number;
  readerAlive: boolean;
  seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hwmKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  return line ? Number(line.split(/\s+/)[1]) : 0;
}

async function startControl(
  dataDir: string,
  budgetMiB: number | undefined,
): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const args = [BIN, 'control', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--auth', 'off'];
  if (budgetMiB !== undefined) args.push('--discovery-send-budget', String(budgetMiB));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`control plane not listening within 60 s:\n${out}`)),
      60_000,
    );
    const poll = setInterval(() => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (!m) return;
      clearInterval(poll);
      clearTimeout(timer);
      resolveUrl(m[1]);
    }, 25);
    child.once('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`control plane exited (${code}):\n${out}`));
    });
  });
  return { child, url, log: () => out };
}

/** A discovery stream: hello for `big`, resolves once its first snapshot arrived. */
async function openStream(url: string, id: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/discovery`, { handshakeTimeout: 10_000 });
  ws.on('error', () => {});
  await new Promise<void>((resolveOpen, reject) => {
    const timer = setTimeout(() => reject(new Error(`${id}: no snapshot within 30 s`)), 30_000);
    ws.once('open', () =>
      ws.send(
        JSON.stringify({
          type: 'hello',
          node: { id, service: 'big', namespace: 'default', address: '127.0.0.1' },
        }),
      ),
    );
    ws.on('message', (d) => {
      if ((JSON.parse(String(d)) as { type?: string }).type !== 'snapshot') return;
      clearTimeout(timer);
      resolveOpen();
    });
    ws.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`${id}: closed before its first snapshot`));
    });
  });
  return ws;
}

async function run(
  label: string,
  budgetMiB: number | undefined,
  opts: { proxies: number; rounds: number; blobKiB: number },
): Promise<RunResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hexmesh-bench-budget-'));
  const cp = await startControl(dataDir, budgetMiB);
  const pid = cp.child.pid!;
  const streams: WebSocket[] = [];
  let peak = 0;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssKiB(pid));
    } catch {}
  }, 25);
  const t0 = Date.now();
  try {
    const doc = {
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'big', namespace: 'default', annotations: { blob: 'x'.repeat(opts.blobKiB * 1024) } },
      spec: { ports: [{ port: 80 }] },
    };
    const put = await fetch(`${cp.url}/v1/resources/Service/default/big`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(doc),
      signal: AbortSignal.timeout(30_000),
    });
    if (!put.ok) throw new Error(`PUT Service big: ${put.status} ${await put.text()}`);
    await sleep(500);
    const startMiB = rssKiB(pid) / 1024;
    for (let i = 0; i < opts.proxies; i++) {
      const ws = await openStream(cp.url, `stalled-${i}`);
      // Stop reading: the kernel's buffers fill, then the control plane's send buffer grows.
      (ws as unknown as { _socket: Socket })._socket.pause();
      streams.push(ws);
    }
    const reader = await openStream(cp.url, 'reader');
    let readerAlive = true;
    reader.on('close', () => (readerAlive = false));
    streams.push(reader);
    for (let round = 0; round < opts.rounds; round++) {
      for (const ws of streams)
        if (ws.readyState === WebSocket.OPEN)
          ws.send(JSON.stringify({ type: 'subscribe', services: ['big'] }));
      await sleep(30);
    }
    // Let the last snapshots be built and queued (or the stalled streams cut).
    await sleep(3000);
    const cut = cp
      .log()
      .split('\n')
      .filter((l) => /cut slow proxy stalled-/.test(l)).length;
    return {
      label,
      startMiB,
      peakMiB: peak / 1024,
      hwmMiB: hwmKiB(pid) / 1024,
      askedMiB: (opts.proxies * opts.rounds * opts.blobKiB) / 1024,
      cut,
      readerAlive,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    clearInterval(sampler);
    for (const ws of streams) ws.terminate();
    const exited = new Promise<void>((r) => cp.child.once('exit', () => r()));
    cp.child.kill('SIGTERM');
    const killer = setTimeout(() => cp.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      proxies: { type: 'string' },
      budget: { type: 'string' },
      rounds: { type: 'string' },
      blob: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  exitOnHelp(values.help, USAGE);
  const proxies = intFlag('proxies', values.proxies, 6, 1);
  const budget = numberFlag('budget', values.budget, 32, 1);
  const rounds = intFlag('rounds', values.rounds, 40, 1);
  const blobKiB = intFlag('blob', values.blob, 1000, 1);
  if (proxies > 32 || rounds > 200 || blobKiB > 1000)
    throw new Error('bounded: --proxies ≤ 32, --rounds ≤ 200, --blob ≤ 1000 (KiB)');
  const opts = { proxies, rounds, blobKiB };
  const results = [
    await run('default budget (no --discovery-send-budget: 256 MiB)', undefined, opts),
    await run(`--discovery-send-budget ${budget}`, budget, opts),
  ];
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    `discovery send budget: ${proxies} stalled proxies, ${rounds} snapshots of ${blobKiB} KiB asked by each, 1 reader; load average ${load}`,
  );
  console.log(
    '| run | RSS before streams | peak RSS (sampled) | VmHWM | snapshot data asked | stalled proxies cut | reader kept its stream | seconds |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results)
    console.log(
      `| ${r.label} | ${r.startMiB.toFixed(0)} MiB | ${r.peakMiB.toFixed(0)} MiB | ${r.hwmMiB.toFixed(0)} MiB | ${r.askedMiB.toFixed(0)} MiB | ${r.cut} / ${proxies} | ${r.readerAlive ? 'yes' : 'no'} | ${r.seconds.toFixed(1)} |`,
    );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
