/**
 * `hexmesh dashboard`: the web dashboard's URL on the control plane (checked reachable
 * first), opened in a browser when `xdg-open` exists and stdout is a terminal
 * (docs/dashboard.md). When the control plane enforces API auth and the CLI has
 * credentials, the URL carries a token in its fragment (`/ui/#token=…`): the page moves it
 * into the tab's sessionStorage and out of the address bar. An admin's credentials mint a
 * short-lived token of `--role` (viewer by default) for the page instead of handing it the
 * admin token.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Command } from 'commander';
import { UsageError, runWithClient, withControl, type ControlOpts } from '../client/command-support.ts';
import { resolveCredentials } from '../client/credentials.ts';
import type { ControlClient } from '../client/control-client.ts';

interface DashboardOpts extends ControlOpts {
  open: boolean;
  token: boolean;
  role: string;
  tokenTtl: string;
}

const PAGE_ROLES = ['viewer', 'operator', 'admin'];

/**
 * The token the page should use, or undefined (auth off, or no credentials). `role` asked
 * for: the CLI's own token when it is that role (or cannot create tokens), else a new one
 * of that role expiring after `ttl`. Notes for the person go to `note`.
 */
export async function pageToken(
  client: ControlClient,
  cliToken: string | undefined,
  opts: { role: string; ttl: string },
  note: (line: string) => void,
): Promise<string | undefined> {
  const who = await client.request<{ auth: string; role?: string }>('GET', '/v1/auth/whoami', {
    accept: [401],
  });
  if (who.body.auth === 'off') return undefined;
  if (!cliToken || who.status === 401) {
    note(
      'the control plane enforces API auth: paste a token into the page (hexmesh auth token create --role viewer)',
    );
    return undefined;
  }
  if (who.body.role === opts.role) return cliToken;
  const made = await client.request<{ token: string; id: string }>('POST', '/v1/auth/tokens', {
    body: { name: `dashboard-${Date.now()}`, role: opts.role, ttl: opts.ttl },
    accept: [403],
  });
  if (made.status === 201) {
    note(
      `the page uses a new ${opts.role} token ${made.body.id} (expires in ${opts.ttl}; hexmesh auth token revoke ${made.body.id})`,
    );
    return made.body.token;
  }
  note(
    `cannot create a ${opts.role} token (role ${who.body.role}): the page uses your own ${who.body.role} token`,
  );
  return cliToken;
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
    .option('--no-token', 'never put a token in the URL (sign in in the page instead)')
    .option(
      '--role <role>',
      `role of the token the page gets when yours may create tokens: ${PAGE_ROLES.join(' | ')}`,
      'viewer',
    )
    .option('--token-ttl <duration>', 'lifetime of a token created for the page', '12h')
    .addHelpText(
      'after',
      `
The control plane serves the dashboard at /ui/. A browser is started with xdg-open only when
stdout is a terminal and xdg-open exists; otherwise the URL is printed alone.

With API auth enforced and credentials (--credentials, HEXMESH_TOKEN), the URL ends in
#token=…: a fragment is never sent to a server nor logged by a proxy; the page keeps the token
in the tab's sessionStorage and removes it from the address bar. Admin credentials create a
short-lived --role token for the page (viewer: read-only; it cannot read rollout status or
tap, use --role operator for those); other roles hand the page their own token. The URL is
still a secret while it is on your terminal.

Examples:
  hexmesh dashboard
  hexmesh dashboard --role operator --token-ttl 1h
  hexmesh dashboard --control http://10.0.0.5:7070 --no-open`,
    )
    .action((opts: DashboardOpts) =>
      runWithClient('dashboard', opts, async (client) => {
        if (!PAGE_ROLES.includes(opts.role))
          throw new UsageError(
            `--role must be one of ${PAGE_ROLES.join(', ')} (got ${JSON.stringify(opts.role)})`,
          );
        // Fails with a clear message (exit 1) when the control plane is not there.
        await client.request('GET', '/v1/health');
        const token = opts.token
          ? await pageToken(
              client,
              resolveCredentials(opts).token,
              { role: opts.role, ttl: opts.tokenTtl },
              (line) => process.stderr.write(`hexmesh dashboard: ${line}\n`),
            )
          : undefined;
        const url = `${client.baseUrl}/ui/${token ? `#token=${encodeURIComponent(token)}` : ''}`;
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
