/**
 * `hexmesh demo`: the quick start. Starts two services (frontend → reviews), each with its
 * own sidecar from static config in examples/quickstart/, sends a request across the mesh
 * and shows what happened; then keeps the mesh running until Ctrl-C (or exits with --once).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { HexmeshError } from '../../errors/hexmesh-error.ts';

/** The checkout: the nearest folder up holding bin/hexmesh.js (this file runs from src/ or from the dist/ bundle). */
function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'bin', 'hexmesh.js'))) return dir;
    if (dirname(dir) === dir) return join(from, '..', '..', '..');
  }
}

const root = findRoot(dirname(fileURLToPath(import.meta.url)));
const qs = join(root, 'examples', 'quickstart');
const bin = join(root, 'bin', 'hexmesh.js');

interface Proc {
  name: string;
  child: ChildProcess;
}

async function waitFor(url: string, timeoutMs: number, procs: Proc[]): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = procs.find((p) => p.child.exitCode !== null);
    if (dead)
      throw new HexmeshError(
        'HEXMESH_ERR_LISTEN',
        `${dead.name} exited with code ${dead.child.exitCode} during start-up`,
      );
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    if (Date.now() > deadline)
      throw new HexmeshError('HEXMESH_ERR_LISTEN', `${url} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'start the quick-start mesh (frontend → reviews, each with a sidecar) and send a request across it',
    )
    .option('--once', 'send the request, print the result and stop everything (used by tests and CI)')
    .addHelpText(
      'after',
      `
What runs (all on 127.0.0.1, configs in examples/quickstart/):
  frontend app :18080 ── its sidecar outbound :14140 ──▶ reviews sidecar inbound :24143 ── reviews app :19080
  admin listeners: frontend sidecar :14191, reviews sidecar :24191

Try, while it runs:
  curl -s localhost:18080/products/1                # a request crossing the mesh
  curl -s localhost:14191/metrics | grep hexmesh_requests_total
  curl -s -H 'Host: reviews' localhost:14140/x      # call reviews yourself through the frontend sidecar`,
    )
    .action(async (opts: { once?: boolean }) => {
      const procs: Proc[] = [];
      const run = (name: string, args: string[]) => {
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout?.on('data', (d: Buffer) => process.stdout.write(`[${name}] ${d}`));
        child.stderr?.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`));
        procs.push({ name, child });
      };
      const stopAll = () => {
        for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
      };
      process.once('SIGINT', () => {
        stopAll();
        process.exit(0);
      });
      process.once('SIGTERM', () => {
        stopAll();
        process.exit(0);
      });
      try {
        run('reviews', [join(qs, 'app.mjs'), '--name', 'reviews', '--port', '19080']);
        run('reviews-sidecar', [bin, 'proxy', '--config', join(qs, 'reviews-proxy.yaml')]);
        run('frontend', [
          join(qs, 'app.mjs'),
          '--name',
          'frontend',
          '--port',
          '18080',
          '--call',
          'reviews',
          '--via',
          '127.0.0.1:14140',
        ]);
        run('frontend-sidecar', [bin, 'proxy', '--config', join(qs, 'frontend-proxy.yaml')]);
        await Promise.all([
          waitFor('http://127.0.0.1:14191/ready', 20_000, procs),
          waitFor('http://127.0.0.1:24191/ready', 20_000, procs),
          waitFor('http://127.0.0.1:18080/health', 20_000, procs),
          waitFor('http://127.0.0.1:19080/health', 20_000, procs),
        ]);
        const res = await fetch('http://127.0.0.1:18080/products/1');
        const body = await res.text();
        process.stdout.write(
          `\nRequest: curl localhost:18080/products/1  (frontend → frontend sidecar → reviews sidecar → reviews)\n` +
            `Response ${res.status}: ${body}\n`,
        );
        const metrics = await (await fetch('http://127.0.0.1:14191/metrics')).text();
        const line = metrics
          .split('\n')
          .find((l) => l.startsWith('hexmesh_requests_total{') && l.includes('direction="outbound"'));
        process.stdout.write(`Frontend sidecar counted it: ${line ?? '(no sample yet)'}\n`);
        const crossed = res.ok && body.includes('"service":"reviews"');
        if (!crossed) throw new HexmeshError('HEXMESH_ERR_INTERNAL', 'the request did not cross the mesh');
        if (opts.once) {
          stopAll();
          return;
        }
        process.stdout.write(
          '\nThe mesh is running. Try the commands in `hexmesh demo --help`. Ctrl-C stops it.\n',
        );
        await new Promise(() => {});
      } catch (err) {
        stopAll();
        throw err;
      }
    });
}
