/**
 * `hexmesh check`: named checks against the control plane, each ok / warn / fail with a
 * message. Checks are a list (`CHECKS`); other areas add theirs there. Exit 1 if any check
 * fails (or `--strict` and any warns), else 0.
 */
import { Command } from 'commander';
import type { CheckResult } from '../../identity/expiry-checks.ts';
import type { ControlClient } from '../client/control-client.ts';
import {
  describeFailure,
  formatData,
  outputOption,
  runWithClient,
  withControl,
  type ControlOpts,
  type OutputFormat,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';
import { MESH_CHECKS } from './mesh-checks.ts';

export type { CheckResult, CheckStatus } from '../../identity/expiry-checks.ts';

export interface CheckContext {
  readonly client: ControlClient;
  readonly now: number;
  /** The control plane's data directory on this host (`--data-dir`), for local checks. */
  readonly dataDir?: string;
}

/** A named check; it may report several findings (one per certificate, say). */
export interface Check {
  readonly name: string;
  readonly description: string;
  /** Reads this host, not the API: runs even when the control plane cannot be reached. */
  readonly local?: boolean;
  run(ctx: CheckContext): Promise<CheckResult[]>;
}

/** Root, intermediate and workload certificate expiry (docs/identity.md). */
const certificates: Check = {
  name: 'certificates',
  description:
    'CA root/intermediate (warn < 30 days) and workload certificates (warn < 6 h or renewal overdue)',
  async run({ client, now }) {
    const [{ certificateFindings }, ca, issued] = await Promise.all([
      import('../../identity/expiry-checks.ts'),
      client.request<{ authorities: import('../../identity/ca.ts').AuthorityInfo[] }>(
        'GET',
        '/v1/identity/ca',
      ),
      client.request<import('../../identity/ca.ts').IssuedRecord[]>('GET', '/v1/identity/certificates'),
    ]);
    return certificateFindings(ca.body.authorities, issued.body, now);
  },
};

/**
 * The data directory on this host: the directory 0700, the store, credentials and keys 0600,
 * all owned by this user (src/store/data-dir.ts). Local: it reads the files, not the API.
 */
const dataDir: Check = {
  name: 'data-dir',
  local: true,
  description: 'the data dir (--data-dir) is 0700 and its secret files (store, credentials, keys) 0600',
  async run({ dataDir: dir = '.hexmesh' }) {
    const { existsSync } = await import('node:fs');
    if (!existsSync(dir)) return []; // the control plane keeps its data elsewhere: nothing to check here
    const { inspectDataDir, octal } = await import('../../store/data-dir.ts');
    const findings = inspectDataDir(dir);
    if (findings.length === 0)
      return [{ name: 'data-dir', status: 'ok', message: `${dir}: 0700, secret files 0600` }];
    return findings.map((f) => ({
      name: 'data-dir',
      status: 'fail' as const,
      message:
        f.problem === 'foreign'
          ? `${f.path} is owned by uid ${f.uid}, not by this user: chown it to the user running the control plane`
          : `${f.path} is mode ${octal(f.mode)}: readable by other users (want ${octal(f.want)}; hexmesh control fixes it on start, or chmod ${octal(f.want)} ${f.path})`,
    }));
  },
};

/** Every check `hexmesh check` runs, in order. */
export const CHECKS: Check[] = [...MESH_CHECKS, certificates, dataDir];

/** Run the checks; one that throws becomes a `fail` finding under its name. */
export async function runChecks(
  ctx: CheckContext,
  checks: readonly Check[] = CHECKS,
): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  let unreachable = false;
  for (const c of checks) {
    if (unreachable && !c.local) continue;
    try {
      out.push(...(await c.run(ctx)));
    } catch (err) {
      out.push({ name: c.name, status: 'fail', message: describeFailure(err).message });
      // Nothing else can be checked without the control plane: one failure, not one per check
      // (this host's own checks still run).
      if (c.name === 'control-plane') unreachable = true;
    }
  }
  return out;
}

const MARK = { ok: '[ok]  ', warn: '[warn]', fail: '[fail]' } as const;

export function checkCommand(): Command {
  return withControl(
    new Command('check')
      .description(
        'check the mesh for problems ahead (control plane, store, proxies in sync, rejected configs, clock skew, certificate expiry): ok / warn / fail per check',
      )
      .option('--strict', 'exit 1 on warnings too')
      .option(
        '--kubernetes',
        "also check the cluster: CRDs established, the control plane's RBAC, injection webhook trusting the mesh CA, proxy images of injected Pods",
      )
      .option(
        '--control-namespace <ns>',
        "with --kubernetes: the control plane's namespace (its ServiceAccount's RBAC is checked)",
        'hexmesh',
      )
      .option(
        '--kubeconfig <file>',
        'with --kubernetes: the kubeconfig (default: in-cluster service account)',
      )
      .option(
        '--data-dir <dir>',
        "the control plane's data directory on this host (file permissions)",
        '.hexmesh',
      )
      .addOption(outputOption(['table', 'json'], 'table')),
  )
    .addHelpText(
      'after',
      `\nChecks:\n${CHECKS.map((c) => `  ${c.name.padEnd(14)} ${c.description}`).join('\n')}`,
    )
    .action(
      async (
        opts: ControlOpts & {
          output: OutputFormat;
          strict?: boolean;
          dataDir: string;
          kubernetes?: boolean;
          kubeconfig?: string;
          controlNamespace: string;
        },
      ) => {
        await runWithClient('check', opts, async (client) => {
          const results = await runChecks({ client, now: Date.now(), dataDir: opts.dataDir });
          if (opts.kubernetes)
            results.push(...(await kubernetesChecks(client, opts.kubeconfig, opts.controlNamespace)));
          if (opts.output === 'json') process.stdout.write(formatData(results, 'json'));
          else for (const r of results) process.stdout.write(`${MARK[r.status]} ${r.name}: ${r.message}\n`);
          const failed = results.some((r) => r.status === 'fail' || (opts.strict && r.status === 'warn'));
          process.exitCode = failed ? EXIT.RUNTIME : EXIT.OK;
        });
      },
    );
}

/** `--kubernetes`: the cluster's side of the mesh (src/control/kubernetes/kube-checks.ts). */
async function kubernetesChecks(
  client: ControlClient,
  kubeconfig: string | undefined,
  controlNamespace: string,
): Promise<CheckResult[]> {
  const [{ KubeApi }, k] = await Promise.all([
    import('../../control/kubernetes/kube-api.ts'),
    import('../../control/kubernetes/kube-checks.ts'),
  ]);
  try {
    const api = await KubeApi.load(kubeconfig);
    const bundle = await client.request<{ roots: string[] }>('GET', '/v1/identity/bundle?format=json');
    return [
      ...(await k.checkCrds(api)),
      ...(await k.checkRbac(api, controlNamespace)),
      ...(await k.checkWebhook(api, bundle.body.roots.join(''))),
      ...(await k.checkSidecars(api)),
    ];
  } catch (err) {
    return [{ name: 'kubernetes', status: 'fail', message: describeFailure(err).message }];
  }
}
