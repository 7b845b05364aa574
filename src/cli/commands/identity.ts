/**
 * `hexmesh identity token create|list|revoke`, `bundle`, `ca`, `certificates`,
 * `rotate start|status|finish`: the workload CA through the control plane's API
 * (docs/identity.md). Also the `hexmesh control` CA flags → CaOptions.
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { AuthorityInfo, CaOptions, IssuedRecord, RotationStatus } from '../../identity/ca.ts';
import type { JoinTokenInfo } from '../../identity/join-tokens.ts';
import {
  age,
  formatData,
  formatTable,
  listCommand,
  outputOption,
  runWithClient,
  withControl,
  type ControlOpts,
  type OutputFormat,
} from '../client/command-support.ts';

/** `hexmesh control` flags of the CA. */
export interface CaFlags {
  trustDomain?: string;
  caCert?: string;
  caKey?: string;
  caIntermediateCert?: string;
  caIntermediateKey?: string;
  caKeySecretFile?: string;
  certTtl?: number;
  maxCertsPerIdentity?: number;
}

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      `${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/** Read the files the flags name (contents never printed) into the CA options. */
export async function caOptionsFromFlags(f: CaFlags, dataDir: string): Promise<CaOptions> {
  if ((f.caKey || f.caIntermediateCert || f.caIntermediateKey) && !f.caCert)
    throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', '--ca-key and --ca-intermediate-* need --ca-cert');
  if (Boolean(f.caIntermediateCert) !== Boolean(f.caIntermediateKey))
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      '--ca-intermediate-cert and --ca-intermediate-key go together',
    );
  const secret = f.caKeySecretFile
    ? (await readPem(f.caKeySecretFile, '--ca-key-secret-file')).trim()
    : process.env.HEXMESH_CA_KEY_SECRET;
  return {
    trustDomain: f.trustDomain ?? 'hexmesh.local',
    dataDir,
    ...(f.certTtl ? { leafTtlMs: f.certTtl } : {}),
    ...(f.maxCertsPerIdentity ? { maxIssuedPerIdentity: f.maxCertsPerIdentity } : {}),
    ...(secret ? { keySecret: secret } : {}),
    ...(f.caCert
      ? {
          import: {
            rootCertPem: await readPem(f.caCert, '--ca-cert'),
            ...(f.caKey ? { rootKeyPem: await readPem(f.caKey, '--ca-key') } : {}),
            ...(f.caIntermediateCert
              ? {
                  intermediateCertPem: await readPem(f.caIntermediateCert, '--ca-intermediate-cert'),
                  intermediateKeyPem: await readPem(f.caIntermediateKey!, '--ca-intermediate-key'),
                }
              : {}),
          },
        }
      : {}),
  };
}

function durationMs(v: string): number {
  const ms = parseDuration(v);
  if (!ms) throw new InvalidArgumentError(`expected a duration like 24h or 30m, got ${JSON.stringify(v)}`);
  return ms;
}

function tokenCreate(): Command {
  return withControl(
    new Command('create')
      .description('create a join token granting one identity (printed once; only its hash is stored)')
      .requiredOption('--namespace <ns>', 'namespace of the identity')
      .requiredOption('--service-account <sa>', 'service account of the identity')
      .option(
        '--instance <id>',
        'bind the token, and the certificates it gets, to this one instance id (the proxy --id)',
      )
      .option('--ttl <duration>', 'how long the token may be used', durationMs, 24 * 3_600_000)
      .addOption(outputOption(['table', 'json'], 'table')),
  )
    .addHelpText(
      'after',
      '\nExample:\n  HEXMESH_JOIN_TOKEN=$(hexmesh identity token create --namespace shop --service-account web) \\\n    hexmesh proxy --control http://127.0.0.1:7070 --service web --namespace shop',
    )
    .action(
      async (
        opts: ControlOpts & {
          namespace: string;
          serviceAccount: string;
          instance?: string;
          ttl: number;
          output: OutputFormat;
        },
      ) => {
        await runWithClient('identity token create', opts, async (client) => {
          const r = await client.request<{ token: string } & JoinTokenInfo>('POST', '/v1/identity/tokens', {
            body: {
              namespace: opts.namespace,
              serviceAccount: opts.serviceAccount,
              ...(opts.instance !== undefined && { instance: opts.instance }),
              ttl: `${opts.ttl}ms`,
            },
          });
          if (opts.output === 'json') process.stdout.write(formatData(r.body, 'json'));
          else {
            // The token alone on stdout, so `$(...)` captures it; the rest on stderr.
            process.stdout.write(`${r.body.token}\n`);
            process.stderr.write(
              `join token ${r.body.id} for spiffe://…/ns/${r.body.namespace}/sa/${r.body.serviceAccount}${r.body.instance ? ` (instance ${r.body.instance})` : ''}, expires ${r.body.expiresAt}\n`,
            );
          }
        });
      },
    );
}

function tokenList(): Command {
  return listCommand<JoinTokenInfo>({
    name: 'list',
    description: 'list join tokens (never their secrets)',
    verb: 'identity token list',
    path: '/v1/identity/tokens',
    header: ['ID', 'NAMESPACE', 'SERVICE ACCOUNT', 'AGE', 'EXPIRES'],
    rows: (list) => {
      const now = Date.now();
      return list.map((t) => [
        t.id,
        t.namespace,
        t.serviceAccount,
        age(t.createdAt),
        Date.parse(t.expiresAt) <= now ? 'expired' : t.expiresAt,
      ]);
    },
    wide: { header: ['CREATED'], cells: (t) => [t.createdAt] },
  });
}

function tokenRevoke(): Command {
  return withControl(
    new Command('revoke').description('revoke a join token').argument('<id>', 'the token id (hxjt.<id>.…)'),
  ).action(async (id: string, opts: ControlOpts) => {
    await runWithClient('identity token revoke', opts, async (client) => {
      await client.request(
        'DELETE',
        `/v1/identity/tokens/${encodeURIComponent(id)}`,
        {},
        `join token "${id}"`,
      );
      process.stdout.write(`join token ${id} revoked\n`);
    });
  });
}

function printRotation(s: RotationStatus, output: OutputFormat): void {
  if (output === 'json') return void process.stdout.write(formatData(s, 'json'));
  process.stdout.write(
    `rotation: ${s.rotating ? `in progress since ${s.startedAt}` : 'none'}; signing authority ${s.active}\n`,
  );
  process.stdout.write(
    formatTable(
      ['AUTHORITY', 'ACTIVE', 'ROOT EXPIRES', 'INTERMEDIATE EXPIRES'],
      s.authorities.map((a: AuthorityInfo) => [
        a.id,
        a.active ? 'yes' : 'no',
        a.root.notAfter,
        a.intermediate.notAfter,
      ]),
    ),
  );
  if (s.pending.length) {
    process.stdout.write(`\n${s.pending.length} workload certificate(s) still on an old chain:\n`);
    process.stdout.write(
      formatTable(
        ['PROXY', 'IDENTITY', 'AUTHORITY', 'EXPIRES'],
        s.pending.map((r: IssuedRecord) => [r.proxyId, r.spiffeId, r.authority, r.notAfter]),
      ),
    );
  } else if (s.rotating)
    process.stdout.write('\nno live certificate on an old chain: `hexmesh identity rotate finish`\n');
}

function rotate(): Command {
  const step = (name: string, description: string, run: (o: { force?: boolean }) => [string, string]) => {
    const cmd = withControl(
      new Command(name).description(description).addOption(outputOption(['table', 'json'], 'table')),
    );
    if (name === 'finish') cmd.option('--force', 'remove the old root even while workloads still use it');
    return cmd.action(async (opts: ControlOpts & { output: OutputFormat; force?: boolean }) => {
      await runWithClient(`identity rotate ${name}`, opts, async (client) => {
        const [method, path] = run(opts);
        printRotation((await client.request<RotationStatus>(method, path)).body, opts.output);
      });
    });
  };
  return new Command('rotate')
    .description('rotate the root CA without downtime: start → (workloads re-issue) → finish')
    .addCommand(
      step(
        'start',
        'add a new root + intermediate; new certificates come from it, both roots are trusted',
        () => ['POST', '/v1/identity/rotation/start'],
      ),
    )
    .addCommand(
      step('status', 'show the authorities and the workloads still on an old chain', () => [
        'GET',
        '/v1/identity/rotation',
      ]),
    )
    .addCommand(
      step('finish', 'remove the old root(s) once no live workload certificate chains to them', (o) => [
        'POST',
        `/v1/identity/rotation/finish${o.force ? '?force=1' : ''}`,
      ]),
    );
}

export function identityCommand(): Command {
  const token = new Command('token')
    .description('join tokens: the proof a proxy gives for its first certificate')
    .addCommand(tokenCreate())
    .addCommand(tokenList())
    .addCommand(tokenRevoke());
  const bundle = withControl(
    new Command('bundle').description('print the trust bundle (every trusted root, PEM)'),
  ).action(async (opts: ControlOpts) => {
    await runWithClient('identity bundle', opts, async (client) => {
      const b = (
        await client.request<{ roots: string[] }>('GET', '/v1/identity/bundle', { query: { format: 'json' } })
      ).body;
      process.stdout.write(b.roots.join(''));
    });
  });
  const certificates = listCommand<IssuedRecord>({
    name: 'certificates',
    description: 'live workload certificates, per proxy',
    verb: 'identity certificates',
    path: '/v1/identity/certificates',
    header: ['PROXY', 'IDENTITY', 'SERIAL', 'AUTHORITY', 'EXPIRES'],
    rows: (list) => list.map((r) => [r.proxyId, r.spiffeId, r.serial, r.authority, r.notAfter]),
    wide: { header: ['ISSUED'], cells: (r) => [r.issuedAt] },
  });
  return new Command('identity')
    .description('workload identity: join tokens, trust bundle, certificates, root rotation')
    .addCommand(token)
    .addCommand(bundle)
    .addCommand(certificates)
    .addCommand(rotate());
}
