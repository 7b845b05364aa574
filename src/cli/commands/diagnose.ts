/**
 * `hexmesh diagnose proxy <instance-id|service>`: what a proxy is running, through the
 * control plane (`GET /v1/proxies/{target}/diagnose`): its sync state (acked version, last
 * rejection), every destination with its endpoints' health, ejection and circuit state,
 * and its effective config with secrets redacted. Like `istioctl proxy-config`.
 */
import { Command } from 'commander';
import { stringify } from 'yaml';
import type { ProxyDiagnosis } from '../../control/api/proxies-diagnose.ts';
import type { DestinationDump } from '../../proxy/admin/endpoints-dump.ts';
import {
  formatData,
  formatTable,
  outputOption,
  runWithClient,
  withControl,
  type ControlOpts,
  type OutputFormat,
} from '../client/command-support.ts';

function proxyText(p: ProxyDiagnosis, showConfig: boolean): string {
  const out: string[] = [];
  out.push(`PROXY ${p.id}  service=${p.namespace}/${p.service}  admin=${p.adminAddress}`);
  if (p.sync === null)
    out.push('  sync: not connected to this control plane replica (static config, or another replica)');
  else {
    const state = p.sync.inSync ? 'in sync' : 'OUT OF SYNC';
    out.push(`  sync: ${state}: acked version ${p.sync.acked}, current ${p.sync.version}`);
    if (p.sync.nack) out.push(`  last rejection: version ${p.sync.nack.version}: ${p.sync.nack.error}`);
  }
  for (const e of p.errors) out.push(`  error: ${e}`);
  const dump = p.endpoints as { version?: number; destinations?: DestinationDump[] } | null;
  if (dump?.destinations) {
    out.push(`  config version in force: ${dump.version}`);
    const rows: string[][] = [];
    for (const d of dump.destinations) {
      if (d.endpoints.length === 0)
        rows.push([`${d.namespace}/${d.service}`, '-', '-', '-', '-', '-', d.circuit, '-']);
      for (const e of d.endpoints)
        rows.push([
          `${d.namespace}/${d.service}`,
          `${e.address}:${e.port}`,
          e.catalogHealthy && e.checkHealthy
            ? 'healthy'
            : !e.catalogHealthy
              ? 'unhealthy (catalog)'
              : 'unhealthy (check)',
          e.ejected ? 'yes' : 'no',
          e.eligible ? 'yes' : 'no',
          String(e.active),
          d.circuit,
          `${e.costMs}ms`,
        ]);
    }
    out.push(
      formatTable(
        ['DESTINATION', 'ENDPOINT', 'HEALTH', 'EJECTED', 'ELIGIBLE', 'ACTIVE', 'CIRCUIT', 'EWMA'],
        rows,
      )
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  }
  if (showConfig && p.config !== null)
    out.push(
      '  config:',
      stringify(p.config)
        .trimEnd()
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n'),
    );
  return out.join('\n') + '\n';
}

export function diagnoseCommand(): Command {
  const diagnose = new Command('diagnose').description('inspect what mesh components are running');
  diagnose.addCommand(
    withControl(
      new Command('proxy')
        .description(
          "a proxy's sync state, endpoints (health, ejection, circuit) and effective config (secrets redacted)",
        )
        .argument('<target>', 'instance id, or a service (every proxy of it)')
        .option('-n, --namespace <ns>', 'namespace of the service')
        .option('--no-config', 'leave the effective config out of the table output')
        .addOption(outputOption(['table', 'json', 'yaml'], 'table')),
    ).action(
      async (
        target: string,
        opts: ControlOpts & { namespace?: string; config: boolean; output: OutputFormat },
      ) => {
        await runWithClient('diagnose proxy', opts, async (client) => {
          const { body } = await client.request<{ target: string; proxies: ProxyDiagnosis[] }>(
            'GET',
            `/v1/proxies/${encodeURIComponent(target)}/diagnose`,
            { query: { namespace: opts.namespace } },
            `proxy "${target}"`,
          );
          if (opts.output !== 'table') return void process.stdout.write(formatData(body, opts.output));
          process.stdout.write(body.proxies.map((p) => proxyText(p, opts.config)).join('\n'));
        });
      },
    ),
  );
  diagnose.commands.forEach((c) => c.exitOverride());
  return diagnose;
}
