/** `hexmesh ps`: the instances of the mesh `hexmesh up` runs, from its state.json. */
import { Command, Option } from 'commander';
import { runLocal } from '../client/command-support.ts';
import { FrameWriter, INTERVAL_OPTION, WATCH_OPTION, intervalMs, watchFrames } from '../client/watch.ts';
import type { InstanceInfo } from '../../runtime/runtime.ts';

function uptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** Rows of a plain text table, columns padded to the widest cell. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => cell.padEnd(widths[c]))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** The rollout revision label of an instance (runtime spec labels). */
const REVISION = 'hexmesh.io/revision';

/**
 * The table's rows (header first). `wide` adds the namespace, rollout revision, the app's
 * and sidecar's pids and the app's log file — what `kill`, `strace` or `tail -f` need.
 */
export function instanceRows(list: readonly InstanceInfo[], now: number, wide = false): string[][] {
  const rows = [
    [
      'SERVICE',
      'INSTANCE',
      'VERSION',
      'STATE',
      'HEALTH',
      'APP',
      'INBOUND',
      'OUTBOUND',
      'ADMIN',
      'RESTARTS',
      'UPTIME',
      ...(wide ? ['NAMESPACE', 'REVISION', 'APP-PID', 'SIDECAR-PID', 'LOG'] : []),
    ],
  ];
  for (const i of list)
    rows.push([
      i.service,
      i.id,
      i.version ?? '-',
      i.state,
      i.health,
      String(i.appPort),
      String(i.inboundPort),
      String(i.outboundPort),
      String(i.adminPort),
      String(i.restarts),
      i.startedAt && (i.state === 'running' || i.state === 'CrashLoop') && i.appPid
        ? uptime(now - i.startedAt)
        : '-',
      ...(wide
        ? [
            i.namespace,
            i.labels?.[REVISION] ?? '-',
            i.appPid === undefined ? '-' : String(i.appPid),
            i.sidecarPid === undefined ? '-' : String(i.sidecarPid),
            i.logFile,
          ]
        : []),
    ]);
  return rows;
}

export function psCommand(): Command {
  return new Command('ps')
    .description('list the instances of the running mesh: state, health, version, ports, restarts, uptime')
    .option('-f, --file <mesh.yaml>', 'the mesh file (its data dir holds the state)')
    .option('--data-dir <dir>', 'the data dir directly')
    .addOption(
      new Option('-o, --output <format>', 'output format: table | wide | json')
        .choices(['table', 'wide', 'json'])
        .default('table'),
    )
    .option(...WATCH_OPTION)
    .option(...INTERVAL_OPTION)
    .action(
      async (opts: {
        file?: string;
        dataDir?: string;
        output: 'table' | 'wide' | 'json';
        watch?: boolean;
        interval?: string;
      }) =>
        runLocal('ps', async () => {
          const { resolveDataDir, readMeshState, liveSupervisor } =
            await import('../../runtime/state-file.ts');
          const dataDir = await resolveDataDir(opts);
          const render = async (): Promise<string> => {
            const st = readMeshState(dataDir);
            const alive = liveSupervisor(dataDir) !== undefined;
            if (opts.output === 'json')
              return `${JSON.stringify(st ? { ...st, supervisorAlive: alive } : { instances: [] }, null, 2)}\n`;
            if (!st) return `no mesh running from ${dataDir}\n`;
            return (
              `mesh ${st.file}: ${st.phase}${alive ? '' : ' (supervisor not running: run hexmesh down to clean up)'}, control plane ${st.controlUrl}\n` +
              table(instanceRows(st.instances, Date.now(), opts.output === 'wide'))
            );
          };
          if (!opts.watch) return void process.stdout.write(await render());
          await watchFrames(
            'hexmesh ps',
            intervalMs(opts),
            render,
            new FrameWriter(),
            opts.output === 'json' ? 'json' : undefined,
          );
        }),
    );
}
