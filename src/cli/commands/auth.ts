/** `hexmesh auth token create|list|revoke` and `hexmesh auth whoami`: API tokens (docs/api-security.md). */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import {
  age,
  formatData,
  listCommand,
  outputOption,
  runWithClient,
  withControl,
  type ControlOpts,
  type OutputFormat,
} from '../client/command-support.ts';

interface TokenInfo {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  expiresAt?: string;
  subject?: { namespace: string; service: string; instance?: string };
}

function durationMs(v: string): number {
  const ms = parseDuration(v);
  if (!ms) throw new InvalidArgumentError(`expected a duration like 30d or 12h, got ${JSON.stringify(v)}`);
  return ms;
}

function tokenCreate(): Command {
  return withControl(
    new Command('create')
      .description('create an API token (printed once; only its hash is stored)')
      .argument('<name>', 'who or what the token is for (e.g. ci, alice)')
      .addOption(
        new Option('--role <role>', 'admin | operator | viewer | workload')
          .choices(['admin', 'operator', 'viewer', 'workload'])
          .default('viewer'),
      )
      .option('--ttl <duration>', 'expiry (default: none)', durationMs)
      .option('--service <name>', 'role workload (required there): the one service the token acts for')
      .option('--namespace <ns>', 'with --service: its namespace (default: default)')
      .option('--instance <id>', 'with --service: bind the token to this one instance id as well')
      .addOption(outputOption(['table', 'json'], 'table')),
  )
    .addHelpText(
      'after',
      '\nA workload token acts for one service only (register, status, heartbeat of its own instances,\n' +
        'the discovery stream of its own proxies).\n\nExamples:\n' +
        '  HEXMESH_TOKEN=$(hexmesh auth token create ci --role operator --ttl 30d)\n' +
        '  hexmesh auth token create web-register --role workload --service web --namespace shop',
    )
    .action(
      async (
        name: string,
        opts: ControlOpts & {
          role: string;
          ttl?: number;
          service?: string;
          namespace?: string;
          instance?: string;
          output: OutputFormat;
        },
        cmd: Command,
      ) => {
        if (opts.role === 'workload' && opts.service === undefined)
          cmd.error('--role workload needs --service: a workload token acts for one service');
        if (opts.service !== undefined && opts.role !== 'workload')
          cmd.error('--service goes with --role workload');
        if ((opts.namespace ?? opts.instance) !== undefined && opts.service === undefined)
          cmd.error('--namespace and --instance go with --service');
        await runWithClient('auth token create', opts, async (client) => {
          const r = await client.request<{ token: string } & TokenInfo>('POST', '/v1/auth/tokens', {
            body: {
              name,
              role: opts.role,
              ...(opts.ttl !== undefined && { ttl: opts.ttl }),
              ...(opts.service !== undefined && { service: opts.service }),
              ...(opts.namespace !== undefined && { namespace: opts.namespace }),
              ...(opts.instance !== undefined && { instance: opts.instance }),
            },
          });
          if (opts.output === 'json') return void process.stdout.write(formatData(r.body, 'json'));
          // The token alone on stdout, so `$(...)` captures it; the rest on stderr.
          process.stdout.write(`${r.body.token}\n`);
          process.stderr.write(
            `API token ${r.body.id} "${r.body.name}" role ${r.body.role}${r.body.subject ? ` for service ${r.body.subject.service} in namespace ${r.body.subject.namespace}${r.body.subject.instance ? `, instance ${r.body.subject.instance}` : ''}` : ''}${r.body.expiresAt ? `, expires ${r.body.expiresAt}` : ''}\n`,
          );
        });
      },
    );
}

function tokenList(): Command {
  return listCommand<TokenInfo>({
    name: 'list',
    description: 'list API tokens (never their secrets)',
    verb: 'auth token list',
    path: '/v1/auth/tokens',
    header: ['ID', 'NAME', 'ROLE', 'SERVICE', 'AGE', 'EXPIRES'],
    rows: (list) =>
      list.map((t) => [
        t.id,
        t.name,
        t.role,
        t.subject
          ? `${t.subject.namespace}/${t.subject.service}${t.subject.instance ? `/${t.subject.instance}` : ''}`
          : t.role === 'workload'
            ? '(unbound)'
            : '-',
        age(t.createdAt),
        t.expiresAt ?? 'never',
      ]),
    wide: { header: ['CREATED'], cells: (t) => [t.createdAt] },
  });
}

function tokenRevoke(): Command {
  return withControl(
    new Command('revoke').description('revoke an API token').argument('<id>', 'the token id (hxat.<id>.…)'),
  ).action(async (id: string, opts: ControlOpts) => {
    await runWithClient('auth token revoke', opts, async (client) => {
      await client.request('DELETE', `/v1/auth/tokens/${encodeURIComponent(id)}`, {}, `API token "${id}"`);
      process.stdout.write(`API token ${id} revoked\n`);
    });
  });
}

function whoami(): Command {
  return withControl(new Command('whoami').description('show who the control plane takes you for')).action(
    async (opts: ControlOpts) => {
      await runWithClient('auth whoami', opts, async (client) => {
        const r = await client.request<Record<string, string>>('GET', '/v1/auth/whoami');
        process.stdout.write(formatData(r.body, 'json'));
      });
    },
  );
}

export function authCommand(): Command {
  return new Command('auth')
    .description('API tokens for people and scripts, and who you are to the control plane')
    .addCommand(
      new Command('token')
        .description('create, list and revoke API tokens (admin)')
        .addCommand(tokenCreate())
        .addCommand(tokenList())
        .addCommand(tokenRevoke()),
    )
    .addCommand(whoami());
}
