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
}

/** A named check; it may report several findings (one per certificate, say). */
export interface Check {
  readonly name: string;
  readonly description: string;
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

/** Every check `hexmesh check` runs, in order. */
export const CHECKS: Check[] = [...MESH_CHECKS, certificates];

/** Run the checks; one that throws becomes a `fail` finding under its name. */
export async function runChecks(
  ctx: CheckContext,
  checks: readonly Check[] = CHECKS,
): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const c of checks) {
    try {
      out.push(...(await c.run(ctx)));
    } catch (err) {
      out.push({ name: c.name, status: 'fail', message: describeFailure(err).message });
      // Nothing else can be checked without the control plane: one failure, not one per check.
      if (c.name === 'control-plane') break;
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
      .addOption(outputOption(['table', 'json'], 'table')),
  )
    .addHelpText(
      'after',
      `\nChecks:\n${CHECKS.map((c) => `  ${c.name.padEnd(14)} ${c.description}`).join('\n')}`,
    )
    .action(async (opts: ControlOpts & { output: OutputFormat; strict?: boolean }) => {
      await runWithClient('check', opts, async (client) => {
        const results = await runChecks({ client, now: Date.now() });
        if (opts.output === 'json') process.stdout.write(formatData(results, 'json'));
        else for (const r of results) process.stdout.write(`${MARK[r.status]} ${r.name}: ${r.message}\n`);
        const failed = results.some((r) => r.status === 'fail' || (opts.strict && r.status === 'warn'));
        process.exitCode = failed ? EXIT.RUNTIME : EXIT.OK;
      });
    });
}
