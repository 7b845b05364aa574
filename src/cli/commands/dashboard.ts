/**
 * `hexmesh dashboard`: the web dashboard's URL on the control plane (checked reachable
 * first), opened in a browser when `xdg-open` exists and stdout is a terminal
 * (docs/dashboard.md).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Command } from 'commander';
import { runWithClient, withControl, type ControlOpts } from '../client/command-support.ts';

interface DashboardOpts extends ControlOpts {
  open: boolean;
}

/** The full path of `name` on PATH, or undefined. */
export function findOnPath(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function dashboardCommand(): Command {
  return withControl(
    new Command('dashboard').description(
      'print the web dashboard URL (topology, service pages, live tap) and open it in a browser',
    ),
  )
    .option('--no-open', 'only print the URL, do not start a browser')
    .addHelpText(
      'after',
      `
The control plane serves the dashboard at /ui/. A browser is started with xdg-open only when
stdout is a terminal and xdg-open exists; otherwise the URL is printed alone.

Examples:
  hexmesh dashboard
  hexmesh dashboard --control http://10.0.0.5:7070 --no-open`,
    )
    .action((opts: DashboardOpts) =>
      runWithClient('dashboard', opts, async (client) => {
        // Fails with a clear message (exit 1) when the control plane is not there.
        await client.request('GET', '/v1/health');
        const url = `${client.baseUrl}/ui/`;
        process.stdout.write(`${url}\n`);
        const opener = opts.open && process.stdout.isTTY ? findOnPath('xdg-open') : undefined;
        if (opener) {
          const child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
          child.on('error', () => {});
          child.unref();
        }
      }),
    );
}
