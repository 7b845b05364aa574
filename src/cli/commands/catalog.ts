/**
 * `hexmesh services | endpoints | register | deregister`: the live service catalog.
 * `register` adds an instance that has no sidecar (as registrator did for containers): it
 * stays in the foreground keeping the instance's lease alive and running its checks, and
 * deregisters on Ctrl-C; `--once` registers and exits (the instance lives for `--ttl`).
 */
import { Command } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import type { NodeCheck } from '../../control/discovery/protocol.ts';
import { AppChecks } from '../../proxy/control-client/app-checks.ts';
import { ControlApiError, type ControlClient } from '../client/control-client.ts';
import type { ServiceStat, ServicesView } from '../../control/metrics/views.ts';
import {
  CliFailure,
  UsageError,
  collect,
  describeFailure,
  formatData,
  formatTable,
  outputOption,
  parseLabels,
  runWithClient,
  withControl,
  type ControlOpts,
  type ListFormat,
} from '../client/command-support.ts';
import { sleep } from '../client/blocking-query.ts';
import { EXIT } from '../exit-codes.ts';
import { fmtMs, fmtPercent, fmtRps } from './stat.ts';

export function servicesCommand(): Command {
  return withControl(
    new Command('services')
      .description('list the services in the catalog with their instances and health')
      .option('-n, --namespace <ns>', 'only this namespace')
      .addOption(outputOption(['table', 'wide', 'json', 'yaml'], 'table')),
  )
    .addHelpText(
      'after',
      "\n-o wide adds each service's golden signals over the last minute (SUCCESS, RPS, P99: hexmesh stat).\n\nExamples:\n  hexmesh services\n  hexmesh services -o wide\n  hexmesh services -o json | jq '.[] | select(.critical > 0)'",
    )
    .action(async (opts: ControlOpts & { namespace?: string; output: ListFormat }) => {
      await runWithClient('services', opts, async (client) => {
        let list = (await client.services()).body;
        if (opts.namespace) list = list.filter((s) => s.namespace === opts.namespace);
        if (opts.output === 'json' || opts.output === 'yaml')
          return void process.stdout.write(formatData(list, opts.output));
        if (list.length === 0) return void process.stderr.write('No services registered.\n');
        const wide = opts.output === 'wide' ? await goldenSignals(client) : undefined;
        process.stdout.write(
          formatTable(
            [
              'SERVICE',
              'NAMESPACE',
              'INSTANCES',
              'PASSING/WARNING/CRITICAL',
              'VERSIONS',
              ...(wide ? ['SUCCESS', 'RPS', 'P99'] : []),
            ],
            list.map((s) => {
              const g = wide?.get(`${s.namespace}/${s.name}`);
              return [
                s.name,
                s.namespace,
                String(s.instances),
                `${s.passing}/${s.warning}/${s.critical}`,
                s.versions.join(',') || '-',
                ...(wide
                  ? g
                    ? [fmtPercent(g.successRate), fmtRps(g.rps), fmtMs(g.latencyMs.p99)]
                    : ['-', '-', '-']
                  : []),
              ];
            }),
          ),
        );
      });
    });
}

/**
 * `services -o wide`: the last minute's figures by `namespace/service`. Best effort: the
 * catalog listing stands without them (a replica that does not collect, a token without
 * `stats:read`), with a note on stderr saying why the columns are empty.
 */
async function goldenSignals(client: ControlClient): Promise<Map<string, ServiceStat>> {
  try {
    const view = (
      await client.request<ServicesView>('GET', '/v1/stats/services', { query: { window: '1m' } })
    ).body;
    return new Map(view.services.map((s) => [`${s.namespace}/${s.service}`, s]));
  } catch (err) {
    process.stderr.write(`hexmesh services: no golden signals: ${describeFailure(err).message}\n`);
    return new Map();
  }
}

export function endpointsCommand(): Command {
  return withControl(
    new Command('endpoints')
      .description("list a service's instances: address, mesh port, version, health")
      .argument('<service>', 'service name')
      .option('-n, --namespace <ns>', 'namespace', 'default')
      .option('--passing', 'only instances whose checks pass')
      .addOption(outputOption(['table', 'wide', 'json', 'yaml'], 'table')),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  hexmesh endpoints reviews\n  hexmesh endpoints reviews --passing -o json',
    )
    .action(
      async (
        service: string,
        opts: ControlOpts & { namespace: string; passing?: boolean; output: ListFormat },
      ) => {
        await runWithClient('endpoints', opts, async (client) => {
          const list = (await client.instances(opts.namespace, service, { passing: opts.passing })).body;
          if (list.length === 0 && !opts.passing) await requireServiceExists(client, opts.namespace, service);
          if (opts.output === 'json' || opts.output === 'yaml')
            return void process.stdout.write(formatData(list, opts.output));
          const wide = opts.output === 'wide';
          if (list.length === 0)
            return void process.stderr.write(
              `No ${opts.passing ? 'passing ' : ''}instances of ${service}.\n`,
            );
          process.stdout.write(
            formatTable(
              ['ID', 'ADDRESS', 'MESH PORT', 'VERSION', 'STATUS', ...(wide ? ['LABELS'] : []), 'OUTPUT'],
              list.map((i) => [
                i.id,
                `${i.address}:${i.port}`,
                i.meshPort ? String(i.meshPort) : '-',
                i.labels.version ?? '-',
                i.status,
                ...(wide
                  ? [
                      Object.entries(i.labels)
                        .map(([k, v]) => `${k}=${v}`)
                        .join(',') || '-',
                    ]
                  : []),
                // Wide shows the whole check output; the table its first 80 characters.
                wide
                  ? (i.output ?? '').replace(/\s+/g, ' ')
                  : (i.output ?? '').replace(/\s+/g, ' ').slice(0, 80),
              ]),
            ),
          );
        });
      },
    );
}

/** A service with no instances and no Service resource does not exist: exit 4. */
async function requireServiceExists(
  client: ControlClient,
  namespace: string,
  service: string,
): Promise<void> {
  try {
    await client.getResource('Service', namespace, service);
  } catch (err) {
    if (err instanceof ControlApiError && err.status === 404)
      throw new CliFailure(
        `service "${service}" not found${namespace === 'default' ? '' : ` in namespace "${namespace}"`}`,
        EXIT.NOT_FOUND,
      );
    throw err;
  }
}

/** `http[:/path]`, `tcp`, `grpc`, `ttl[:30s]` (interval 10 s, as `hexmesh proxy --check`). */
export function parseCheckSpec(v: string, i: number): NodeCheck {
  const colon = v.indexOf(':');
  const type = colon < 0 ? v : v.slice(0, colon);
  const arg = colon < 0 ? undefined : v.slice(colon + 1);
  if (type === 'http') return { name: `check-${i}`, type, path: arg || '/health' };
  if (type === 'tcp' || type === 'grpc') return { name: `check-${i}`, type };
  if (type === 'ttl') {
    const ttl = parseDuration(arg ?? '30s');
    if (ttl === undefined || ttl < 100)
      throw new UsageError(`--check ttl:<duration> (got ${JSON.stringify(v)})`);
    return { name: `check-${i}`, type, ttl };
  }
  throw new UsageError(
    `--check must be http[:/path], tcp, grpc or ttl[:duration] (got ${JSON.stringify(v)})`,
  );
}

interface RegisterOpts extends ControlOpts {
  service: string;
  namespace: string;
  address: string;
  port: string;
  id?: string;
  label?: string[];
  check?: string[];
  ttl: string;
  once?: boolean;
}

export function registerCommand(): Command {
  return withControl(
    new Command('register')
      .description('add an instance that has no sidecar to the catalog, and keep it alive until Ctrl-C')
      .requiredOption('--service <name>', 'service of the instance')
      .requiredOption('--address <host>', 'address the instance is reached at')
      .requiredOption('--port <port>', "the instance's port")
      .option('-n, --namespace <ns>', 'namespace', 'default')
      .option('--id <id>', 'instance id (default <address>-<port>)')
      .option('--label <key=value>', 'instance label (version, zone, ...), repeatable', collect)
      .option(
        '--check <spec>',
        'health check http[:/path] | tcp | grpc | ttl[:30s], repeatable; run by this command',
        collect,
      )
      .option('--ttl <duration>', 'lease: the instance disappears this long after the last heartbeat', '15s')
      .option('--once', 'register and exit (the instance lives for --ttl; nothing runs its checks)'),
  )
    .addHelpText(
      'after',
      `
Without --once the command stays in the foreground: it heartbeats the lease every third
of --ttl, runs the checks against address:port and reports their status, and deregisters
the instance on Ctrl-C (SIGINT) or SIGTERM.

Examples:
  hexmesh register --service db --address 10.0.0.5 --port 5432 --label version=15 --check tcp
  hexmesh register --service legacy --address 127.0.0.1 --port 8080 --check http:/health --once --ttl 1h`,
    )
    .action(async (opts: RegisterOpts) => {
      await runWithClient('register', opts, async (client) => {
        const port = Number(opts.port);
        if (!Number.isInteger(port) || port < 1 || port > 65535)
          throw new UsageError(`--port must be 1..65535 (got ${JSON.stringify(opts.port)})`);
        const ttlMs = parseDuration(opts.ttl);
        if (ttlMs === undefined || ttlMs < 100)
          throw new UsageError(
            `--ttl must be a duration of at least 100ms (got ${JSON.stringify(opts.ttl)})`,
          );
        const checks = (opts.check ?? []).map(parseCheckSpec);
        const body = {
          ...(opts.id ? { id: opts.id } : {}),
          service: opts.service,
          namespace: opts.namespace,
          address: opts.address,
          port,
          labels: parseLabels(opts.label),
          checks,
          ttl: opts.ttl,
        };
        let reg = (await client.register(body)).body;
        process.stdout.write(
          `registered ${opts.service}/${reg.id} (lease ${reg.lease}, ttl ${opts.ttl}, status ${reg.status})\n`,
        );
        if (opts.once) {
          if (checks.some((c) => c.type !== 'ttl'))
            process.stderr.write(
              'warning: with --once nothing runs the checks; the instance stays critical until its status is reported\n',
            );
          return;
        }
        await keepAlive(
          client,
          opts,
          body,
          ttlMs,
          checks,
          () => reg,
          (r) => (reg = r),
        );
      });
    });
}

/** Heartbeat, run checks, re-register after a lapsed lease; on a signal, deregister. */
async function keepAlive(
  client: ControlClient,
  opts: RegisterOpts,
  body: Record<string, unknown>,
  ttlMs: number,
  checks: NodeCheck[],
  current: () => { id: string; lease: number },
  set: (r: { id: string; lease: number; status: string }) => void,
): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let reported: { status: string; output: string } | undefined;
  const report = async () => {
    if (!reported) return;
    try {
      await client.reportStatus(opts.namespace, opts.service, current().id, reported.status, reported.output);
    } catch (err) {
      process.stderr.write(`hexmesh register: status report failed: ${(err as Error).message}\n`);
    }
  };
  const appChecks = checks.length
    ? new AppChecks(checks, { host: opts.address, port: Number(opts.port) }, (status, output) => {
        reported = { status, output };
        void report();
      })
    : undefined;
  try {
    while (!stop.signal.aborted) {
      await sleep(Math.max(50, Math.floor(ttlMs / 3)), stop.signal);
      if (stop.signal.aborted) break;
      try {
        await client.heartbeat(current().lease);
      } catch (err) {
        if (err instanceof ControlApiError && err.status === 404) {
          // The lease lapsed (control plane away too long): register again, re-report status.
          const r = (await client.register(body).catch(() => undefined))?.body;
          if (r) {
            set(r);
            process.stderr.write(`hexmesh register: lease expired; registered again (lease ${r.lease})\n`);
            await report();
          }
        } else process.stderr.write(`hexmesh register: heartbeat failed: ${(err as Error).message}\n`);
      }
    }
  } finally {
    appChecks?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  await client.deregister(opts.namespace, opts.service, current().id).catch(() => undefined);
  process.stdout.write(`deregistered ${opts.service}/${current().id}\n`);
}

export function deregisterCommand(): Command {
  return withControl(
    new Command('deregister')
      .description('remove an instance from the catalog')
      .argument('<service>', 'service of the instance')
      .argument('<id>', 'instance id (see hexmesh endpoints)')
      .option('-n, --namespace <ns>', 'namespace', 'default'),
  )
    .addHelpText('after', '\nExample:\n  hexmesh deregister db 10.0.0.5-5432')
    .action(async (service: string, id: string, opts: ControlOpts & { namespace: string }) => {
      await runWithClient('deregister', opts, async (client) => {
        await client.deregister(opts.namespace, service, id);
        process.stdout.write(`deregistered ${service}/${id}\n`);
      });
    });
}
