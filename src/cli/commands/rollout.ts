/**
 * `hexmesh rollout start|status|promote|pause|resume|abort|undo|history`. Status and
 * history are read from the controller's KV keys (src/rollout/rollout-status.ts); the
 * other verbs write a command there for the controller (hosted by `hexmesh up`).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { parseDocuments } from '../../config/load.ts';
import type { ControlClient } from '../client/control-client.ts';
import { blockingQuery } from '../client/blocking-query.ts';
import {
  CliFailure,
  formatData,
  formatTable,
  outputOption,
  runWithClient,
  withControl,
  type ControlOpts,
  type OutputFormat,
  type ListFormat,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';
import {
  TERMINAL_PHASES,
  rolloutKeys,
  type HistoryEntry,
  type RolloutAction,
  type RolloutStatus,
} from '../../rollout/rollout-status.ts';

type Opts = ControlOpts & { namespace: string };

const nsOption = (c: Command) => c.option('-n, --namespace <ns>', 'namespace', 'default');

async function readStatus(client: ControlClient, o: Opts, name: string): Promise<RolloutStatus> {
  const e = (await client.kvGet(rolloutKeys.status(o.namespace, name))).body;
  if (!e)
    throw new CliFailure(`rollout "${name}" has no status yet (is hexmesh up running?)`, EXIT.NOT_FOUND);
  return JSON.parse(e.value) as RolloutStatus;
}

/** A progress bar, phase, weight, step and the last analysis run. */
export function renderStatus(s: RolloutStatus): string {
  const width = 30;
  const filled = Math.round((s.weight / 100) * width);
  const lines = [
    `Rollout ${s.namespace}/${s.name} (service ${s.service}, ${s.strategy})`,
    `  Phase:     ${s.phase}${s.reason ? ` — ${s.reason}` : ''}`,
    `  Revision:  ${s.revision} (stable: ${s.stableRevision})`,
    `  Weight:    [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${s.weight}%`,
    `  Step:      ${s.steps ? `${Math.min(s.step + 1, s.steps)}/${s.steps}` : '-'}`,
    `  Message:   ${s.message}`,
    `  Instances: stable ${s.instances.stable.join(', ') || '-'}; new ${s.instances.canary.join(', ') || '-'}`,
    `  Analysis:  ${analysisLine(s)}`,
  ];
  if (s.phase === 'Paused')
    lines.push(
      `  Next:      hexmesh rollout promote ${s.name} (finish now), hexmesh rollout resume ${s.name} (go on step by step), hexmesh rollout abort ${s.name} (roll back)`,
    );
  const last = s.analysis.at(-1);
  if (last) {
    lines.push(`  Last analysis (${new Date(last.at).toISOString()}): ${last.pass ? 'pass' : 'FAIL'}`);
    for (const c of last.checks)
      lines.push(
        `    ${c.pass ? '✓' : '✗'} ${c.name}: ${c.value ?? '-'} (threshold ${c.threshold})${c.message ? ` ${c.message}` : ''}`,
      );
  }
  return lines.join('\n') + '\n';
}

/** No "Failed analyses 0/1" for a rollout without analysis: say there is none. */
function analysisLine(s: RolloutStatus): string {
  if (
    s.analysisConfigured === false ||
    (s.analysisConfigured === undefined && !s.analysis.length && !s.failedChecks)
  )
    return 'none configured';
  if (!s.analysis.length) return `not run yet (rolls back after ${s.threshold} failed)`;
  return `${s.failedChecks} failed of ${s.threshold} allowed before rollback`;
}

/** A history outcome as it reads now: the running revision shows Paused while paused. */
export function historyOutcome(x: HistoryEntry, status: RolloutStatus | undefined): string {
  const paused = x.outcome === 'Progressing' && status?.phase === 'Paused' && status.revision === x.revision;
  return (paused ? 'Paused' : x.outcome) + (x.reason ? ` (${x.reason})` : '');
}

function statusCommand(): Command {
  return withControl(
    nsOption(
      new Command('status')
        .description('phase, weight, step and analysis results of a rollout')
        .argument('<name>', 'the Rollout')
        .option('-w, --watch', 'follow changes (blocking queries) until the rollout ends')
        .addOption(outputOption(['table', 'json'], 'table')),
    ),
  ).action(async (name: string, o: Opts & { watch?: boolean; output: OutputFormat }) => {
    await runWithClient('rollout status', o, async (client) => {
      const show = (s: RolloutStatus): void => {
        process.stdout.write(o.output === 'json' ? JSON.stringify(s) + '\n' : renderStatus(s));
      };
      if (!o.watch) return show(await readStatus(client, o, name));
      const ac = new AbortController();
      for await (const { body } of blockingQuery(
        (b) => client.kvGet(rolloutKeys.status(o.namespace, name), b),
        {
          signal: ac.signal,
        },
      )) {
        if (!body) continue;
        const s = JSON.parse(body.value) as RolloutStatus;
        show(s);
        if (TERMINAL_PHASES.has(s.phase)) ac.abort();
      }
    });
  });
}

function commandVerb(action: RolloutAction, description: string): Command {
  const c = withControl(
    nsOption(new Command(action).description(description).argument('<name>', 'the Rollout')),
  );
  if (action === 'undo')
    c.option('--to-revision <n>', 'the revision to return to (default: the previous one)');
  return c.action(async (name: string, o: Opts & { toRevision?: string }) => {
    await runWithClient(`rollout ${action}`, o, async (client) => {
      await readStatus(client, o, name);
      const cmd = {
        action,
        id: randomUUID(),
        at: Date.now(),
        ...(o.toRevision !== undefined ? { toRevision: Number(o.toRevision) } : {}),
      };
      await client.kvPut(rolloutKeys.command(o.namespace, name), JSON.stringify(cmd));
      process.stdout.write(`rollout ${o.namespace}/${name}: ${action} requested\n`);
    });
  });
}

function startCommand(): Command {
  return withControl(
    new Command('start')
      .description('apply a Rollout (a changed template starts a new revision)')
      .requiredOption('-f, --filename <file>', 'the Rollout YAML/JSON'),
  ).action(async (o: ControlOpts & { filename: string }) => {
    await runWithClient('rollout start', o, async (client) => {
      const docs = parseDocuments(readFileSync(o.filename, 'utf8'), o.filename);
      const r = (await client.apply(docs)).body;
      for (const x of r.results) process.stdout.write(`${x.kind} ${x.namespace}/${x.name} ${x.action}\n`);
    });
  });
}

function historyCommand(): Command {
  return withControl(
    nsOption(
      new Command('history')
        .description('every revision with what changed and how it ended')
        .argument('<name>', 'the Rollout')
        .addOption(outputOption(['table', 'wide', 'json'], 'table')),
    ),
  ).action(async (name: string, o: Opts & { output: ListFormat }) => {
    await runWithClient('rollout history', o, async (client) => {
      const e = (await client.kvGet(rolloutKeys.history(o.namespace, name))).body;
      if (!e) throw new CliFailure(`rollout "${name}" has no history`, EXIT.NOT_FOUND);
      const h = JSON.parse(e.value) as HistoryEntry[];
      if (o.output === 'json') return void process.stdout.write(formatData(h, 'json'));
      const st = (await client.kvGet(rolloutKeys.status(o.namespace, name))).body;
      const status = st ? (JSON.parse(st.value) as RolloutStatus) : undefined;
      // -o wide: when it ended, how long it ran, and the version label it ran.
      const wide = o.output === 'wide';
      process.stdout.write(
        formatTable(
          ['REVISION', 'STARTED', 'OUTCOME', ...(wide ? ['FINISHED', 'DURATION', 'VERSION'] : []), 'CHANGES'],
          h.map((x) => [
            String(x.revision),
            new Date(x.startedAt).toISOString(),
            historyOutcome(x, status),
            ...(wide
              ? [
                  x.finishedAt === undefined ? '-' : new Date(x.finishedAt).toISOString(),
                  x.finishedAt === undefined ? '-' : `${Math.round((x.finishedAt - x.startedAt) / 1000)}s`,
                  x.template?.labels?.version ?? '-',
                ]
              : []),
            x.changes.join('; '),
          ]),
        ),
      );
    });
  });
}

export function rolloutCommand(): Command {
  return new Command('rollout')
    .description('progressive delivery: canary and blue/green rollouts with automatic rollback')
    .addCommand(startCommand())
    .addCommand(statusCommand())
    .addCommand(commandVerb('promote', 'skip the remaining steps and promote now'))
    .addCommand(commandVerb('pause', 'hold the rollout at its current step'))
    .addCommand(commandVerb('resume', 'continue a paused rollout'))
    .addCommand(commandVerb('abort', 'roll back: all traffic to stable, new instances destroyed'))
    .addCommand(commandVerb('undo', 'return to the previous revision (instant while blue/green keeps it)'))
    .addCommand(historyCommand());
}
