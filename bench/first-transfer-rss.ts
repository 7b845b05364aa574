/**
 * RSS of fresh sidecars across their first large transfers (issue 9: "the first 100 MiB through
 * fresh sidecars grows RSS by +42–52 MiB, later ones ≤ 11").
 *
 *   node --import tsx bench/first-transfer-rss.ts [--mib 100] [--rounds 3] [--upload] [--small N]
 *
 * Starts an app and two `hexmesh proxy` processes (client outbound → server inbound → app), sends
 * one small request (the steady state a real sidecar is in before its first big body), then
 * `rounds` transfers of `mib` MiB (downloads, or uploads with --upload) and prints each proxy's
 * RSS: after the small request, the peak during each transfer (VmHWM, reset before it) and the RSS
 * after it. Not a test: the
 * figures depend on the machine; docs/benchmark.md quotes them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { stringify } from 'yaml';
import { freePort } from './lib/free-port.ts';
import { waitFor200 } from './lib/http-probe.ts';
import { rssKiB } from './lib/proc-stats.ts';

/** Peak RSS of `pid` so far in KiB (VmHWM: the kernel's high-water mark, no sampling gaps). */
function peakKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  return Number(line?.split(/\s+/)[1] ?? 0);
}

const BIN = resolve(import.meta.dirname, '..', 'bin', 'hexmesh.js');
const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const MIB = flag('--mib', 100);
const ROUNDS = flag('--rounds', 3);
const UPLOAD = args.includes('--upload');
const SMALL = flag('--small', 0);
const CHUNK = 64 * 1024;

const APP = `
const http = require('node:http');
const chunk = Buffer.alloc(${CHUNK}, 120);
http.createServer((req, res) => {
  if (req.url.startsWith('/big')) {
    const total = Number(new URL(req.url, 'http://x').searchParams.get('bytes'));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  let n = 0;
  req.on('data', (d) => (n += d.length));
  req.on('end', () => res.end(String(n)));
}).listen(0, '127.0.0.1', function () { process.stdout.write(this.address().port + '\\n'); });
`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-rss-'));
  const children: ChildProcess[] = [];
  try {
    const app = spawn(process.execPath, ['-e', APP], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(app);
    const [line] = (await once(app.stdout!, 'data')) as [Buffer];
    const appPort = Number(line.toString().trim());
    const [cOut, cIn, cAdmin, sOut, sIn, sAdmin] = await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    );
    const loop = (port: number) => ({ address: '127.0.0.1', port });
    const server = {
      proxy: {
        service: 'big',
        outbound: loop(sOut),
        inbound: loop(sIn),
        admin: loop(sAdmin),
        app: { host: '127.0.0.1', port: appPort },
      },
    };
    const client = {
      proxy: { service: 'client', outbound: loop(cOut), inbound: loop(cIn), admin: loop(cAdmin) },
      services: [{ name: 'big', ports: [{ port: 80, protocol: 'http' }], endpoints: [loop(sIn)] }],
    };
    writeFileSync(join(dir, 'server.yaml'), stringify(server));
    writeFileSync(join(dir, 'client.yaml'), stringify(client));
    const env = { ...process.env, NODE_ENV: 'production' };
    // Node/V8 flags for the proxies, to compare (e.g. PROXY_NODE_ARGS='--max-semi-space-size=4').
    const nodeArgs = (process.env.PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const procs = ['server', 'client'].map((n) => {
      const p = spawn(process.execPath, [...nodeArgs, BIN, 'proxy', '--config', join(dir, `${n}.yaml`)], {
        env,
        stdio: ['ignore', process.env.PROXY_STDOUT === 'inherit' ? 'inherit' : 'ignore', 'inherit'],
      });
      children.push(p);
      return { name: n, pid: p.pid! };
    });
    await waitFor200(`http://127.0.0.1:${sAdmin}/ready`, { timeoutMs: 90_000 });
    await waitFor200(`http://127.0.0.1:${cAdmin}/ready`, { timeoutMs: 90_000 });
    const origin = `http://127.0.0.1:${cOut}`;
    const mib = (kib: number): string => (kib / 1024).toFixed(1);
    const row = (label: string, kib: number[]): void =>
      console.log(
        `${label.padEnd(28)} ${procs.map((p, i) => `${p.name} ${mib(kib[i]).padStart(6)} MiB`).join('   ')}`,
      );
    const sample = (): number[] => procs.map((p) => rssKiB(p.pid));

    const small = await request(`${origin}/big?bytes=1024`, { headers: { host: 'big' } });
    await small.body.dump();
    if (SMALL > 0) {
      // Small requests first (--small N): their rate, to compare builds (the parser's tiering).
      let sent = 0;
      const t = performance.now();
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (sent < SMALL) {
            sent++;
            const r = await request(`${origin}/big?bytes=1024`, { headers: { host: 'big' } });
            await r.body.dump();
          }
        }),
      );
      console.log(
        `${SMALL} small GETs at concurrency 8: ${Math.round(SMALL / ((performance.now() - t) / 1000))} req/s`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
    const base = sample();
    row('after one 1 KiB request', base);
    const bytes = MIB * 1024 * 1024;
    for (let round = 1; round <= ROUNDS; round++) {
      // Reset each proxy's high-water mark, so VmHWM is this transfer's own peak.
      for (const p of procs) writeFileSync(`/proc/${p.pid}/clear_refs`, '5');
      const t0 = performance.now();
      if (UPLOAD) {
        let left = bytes;
        const chunk = Buffer.alloc(CHUNK, 121);
        const body = new Readable({
          read() {
            if (left <= 0) return void this.push(null);
            left -= CHUNK;
            this.push(chunk);
          },
        });
        const r = await request(`${origin}/sink`, { method: 'PUT', body, headers: { host: 'big' } });
        await r.body.dump();
      } else {
        const r = await request(`${origin}/big?bytes=${bytes}`, { headers: { host: 'big' } });
        // Read every byte (undici's body.dump() stops after 128 KiB and aborts the rest).
        let got = 0;
        for await (const c of r.body) got += (c as Buffer).length;
        if (got !== bytes) throw new Error(`download: got ${got} of ${bytes} bytes (status ${r.statusCode})`);
      }
      const peak = procs.map((p) => peakKiB(p.pid));
      const ms = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 500));
      const after = sample();
      row(`transfer ${round} peak (VmHWM)`, peak);
      console.log(
        `${''.padEnd(28)} ${procs.map((p, i) => `${p.name} +${mib(peak[i] - base[i]).padStart(5)} MiB`).join('   ')}   ${(MIB / (ms / 1000)).toFixed(0)} MiB/s`,
      );
      row(`transfer ${round} after`, after);
    }
  } finally {
    for (const c of children) c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
