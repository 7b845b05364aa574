/**
 * `hexmesh await -- CMD args`: wait for the local sidecar to be ready, run CMD, and when it
 * exits tell the sidecar to shut down (a job's sidecar ends with the job); exit with CMD's code.
 */
import { spawn } from 'node:child_process';
import { Command } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import { ADMIN_HEADER } from '../../proxy/admin/admin-guard.ts';
import { EXIT } from '../exit-codes.ts';

const SIGNALS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function awaitCommand(): Command {
  return new Command('await')
    .description("wait for this instance's sidecar to be ready, run a command, then shut the sidecar down")
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--admin <host:port>', 'sidecar admin address (default: env HEXMESH_ADMIN, else 127.0.0.1:4191)')
    .option('--timeout <duration>', 'how long to wait for /ready', '30s')
    .option('--no-shutdown', 'leave the sidecar running when the command exits')
    .addHelpText(
      'after',
      `
Example (the app of a job, started by hexmesh up, which sets HEXMESH_ADMIN):
  command: node
  args: [bin/hexmesh.js, await, --, node, jobs/migrate.mjs]`,
    )
    .action(async (argv: string[], opts: { admin?: string; timeout: string; shutdown: boolean }) => {
      const admin = opts.admin ?? process.env.HEXMESH_ADMIN ?? '127.0.0.1:4191';
      const timeoutMs = parseDuration(opts.timeout);
      if (timeoutMs === undefined)
        return fail(`--timeout: expected a duration, got ${opts.timeout}`, EXIT.USAGE);
      const deadline = Date.now() + timeoutMs;
      let last: string;
      for (;;) {
        try {
          const r = await fetch(`http://${admin}/ready`, { signal: AbortSignal.timeout(1000) });
          last = `${r.status} ${(await r.text()).trim()}`;
          if (r.ok) break;
        } catch (e) {
          last = (e as Error).message;
        }
        if (Date.now() > deadline)
          return fail(`sidecar ${admin} not ready after ${opts.timeout} (${last})`, EXIT.RUNTIME);
        await new Promise((r) => setTimeout(r, 100));
      }
      const [cmd, ...args] = argv;
      const child = spawn(cmd, args, { stdio: 'inherit' });
      const forward = (s: NodeJS.Signals) => () => child.kill(s);
      process.on('SIGTERM', forward('SIGTERM'));
      process.on('SIGINT', forward('SIGINT'));
      const code = await new Promise<number>((resolve) => {
        child.once('error', (e) => {
          process.stderr.write(`hexmesh await: cannot run ${cmd}: ${e.message}\n`);
          resolve(127);
        });
        child.once('exit', (c, s) => resolve(c ?? 128 + (s ? (SIGNALS[s] ?? 1) : 1)));
      });
      if (opts.shutdown) {
        try {
          const r = await fetch(`http://${admin}/shutdown`, {
            method: 'POST',
            // State-changing admin requests carry this header (docs/admin.md).
            headers: { [ADMIN_HEADER]: '1' },
            signal: AbortSignal.timeout(3000),
          });
          await r.body?.cancel();
        } catch {}
      }
      process.exitCode = code;
    });
}

function fail(message: string, code: number): void {
  process.stderr.write(`hexmesh await: ${message}\n`);
  process.exitCode = code;
}
