/** `hexmesh kv get | put | delete | ls | watch`: the control plane's key/value store. */
import { Command, InvalidArgumentError } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import type { KvEntry } from '../client/control-client.ts';
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

function revision(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(`expected a revision (an integer ≥ 0), got ${JSON.stringify(v)}`);
  return n;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function kvGet(): Command {
  return withControl(
    new Command('get')
      .description('print the value of a key')
      .argument('<key>', 'the key, e.g. app/config/maxconn')
      .addOption(outputOption(['table', 'json'], 'table')),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  hexmesh kv get app/maxconn\n  hexmesh kv get app/maxconn -o json   # key, value, modRevision, createRevision',
    )
    .action(async (key: string, opts: ControlOpts & { output: OutputFormat }) => {
      await runWithClient('kv get', opts, async (client) => {
        const e = (await client.kvGet(key)).body;
        if (!e) throw new CliFailure(`key "${key}" not found`, EXIT.NOT_FOUND);
        process.stdout.write(
          opts.output === 'json' ? formatData(e, 'json') : e.value.endsWith('\n') ? e.value : `${e.value}\n`,
        );
      });
    });
}

function kvPut(): Command {
  return withControl(
    new Command('put')
      .description('set a key (the value from the argument, or - for stdin)')
      .argument('<key>', 'the key')
      .argument('<value>', 'the value, or - to read it from stdin')
      .option(
        '--cas <modRevision>',
        'write only if the key is at this modRevision (0: only if absent); else exit 5',
        revision,
      ),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  hexmesh kv put app/maxconn 100\n  hexmesh kv put app/config - < config.json\n  hexmesh kv put app/lock me --cas 0',
    )
    .action(async (key: string, value: string, opts: ControlOpts & { cas?: number }) => {
      await runWithClient('kv put', opts, async (client) => {
        const v = value === '-' ? await readStdin() : value;
        const r = (await client.kvPut(key, v, opts.cas)).body;
        if (!r.ok)
          throw new CliFailure(
            `conflict: key "${key}" is ${r.modRevision === 0 ? 'absent' : `at modRevision ${r.modRevision}`}, not ${opts.cas}; nothing written`,
            EXIT.CONFLICT,
          );
        process.stdout.write(`${key} written (modRevision ${r.modRevision})\n`);
      });
    });
}

function kvDelete(): Command {
  return withControl(
    new Command('delete')
      .description('delete a key, or every key under a prefix')
      .argument('<key>', 'the key (or prefix with --recurse)')
      .option('--recurse', 'delete every key starting with <key>')
      .option('--cas <modRevision>', 'delete only if the key is at this modRevision; else exit 5', revision),
  )
    .addHelpText('after', '\nExamples:\n  hexmesh kv delete app/maxconn\n  hexmesh kv delete app/ --recurse')
    .action(async (key: string, opts: ControlOpts & { recurse?: boolean; cas?: number }) => {
      await runWithClient('kv delete', opts, async (client) => {
        if (opts.recurse && opts.cas !== undefined)
          throw new CliFailure('--cas and --recurse cannot be combined', EXIT.USAGE);
        const r = (await client.kvDelete(key, { recurse: opts.recurse, cas: opts.cas })).body;
        if (opts.cas !== undefined && !r.ok)
          throw new CliFailure(
            `conflict: key "${key}" is not at modRevision ${opts.cas}; nothing deleted`,
            EXIT.CONFLICT,
          );
        if (r.deleted === 0 && !opts.recurse) throw new CliFailure(`key "${key}" not found`, EXIT.NOT_FOUND);
        process.stdout.write(`deleted ${r.deleted} key${r.deleted === 1 ? '' : 's'}\n`);
      });
    });
}

function kvLs(): Command {
  return withControl(
    new Command('ls')
      .description('list keys under a prefix (keep the trailing slash: app/ lists app/..., not apple)')
      .argument('[prefix]', 'key prefix (default: every key)', '')
      .addOption(outputOption(['table', 'wide', 'json'], 'table')),
  )
    .addHelpText(
      'after',
      "\n-o wide adds CREATEREVISION and BYTES (the whole value's size).\n\nExamples:\n  hexmesh kv ls app/\n  hexmesh kv ls -o json",
    )
    .action(async (prefix: string, opts: ControlOpts & { output: ListFormat }) => {
      await runWithClient('kv ls', opts, async (client) => {
        const list = (await client.kvList(prefix)).body;
        if (opts.output === 'json') return void process.stdout.write(formatData(list, 'json'));
        if (list.length === 0) return void process.stderr.write(`No keys under "${prefix}".\n`);
        const wide = opts.output === 'wide';
        process.stdout.write(
          formatTable(
            ['KEY', 'MODREVISION', ...(wide ? ['CREATEREVISION', 'BYTES'] : []), 'VALUE'],
            list.map((e) => [
              e.key,
              String(e.modRevision),
              ...(wide ? [String(e.createRevision), String(Buffer.byteLength(e.value))] : []),
              preview(e.value),
            ]),
          ),
        );
      });
    });
}

const preview = (v: string) => {
  // Control characters escaped so one entry stays on one line; quotes left as they are.
  // eslint-disable-next-line no-control-regex
  const one = v.replace(/[\x00-\x1f]/g, (c) => JSON.stringify(c).slice(1, -1));
  return one.length > 60 ? `${one.slice(0, 57)}...` : one;
};

/** What changed between two listings of a prefix, as lines to print. */
export function kvChanges(before: ReadonlyMap<string, KvEntry>, after: readonly KvEntry[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const e of after) {
    seen.add(e.key);
    const prev = before.get(e.key);
    if (!prev || prev.modRevision !== e.modRevision)
      out.push(`put ${e.key} = ${preview(e.value)} (modRevision ${e.modRevision})`);
  }
  for (const k of before.keys()) if (!seen.has(k)) out.push(`delete ${k}`);
  return out;
}

function kvWatch(): Command {
  return withControl(
    new Command('watch')
      .description('print every change of a key (or of every key under a prefix) until Ctrl-C')
      .argument('<key>', 'the key, or a prefix with --prefix')
      .option('--prefix', 'watch every key starting with <key>')
      .option('--count <n>', 'exit after this many changes (the first state counts as one)', revision)
      .option('--wait <duration>', 'wait of each blocking query', '60s'),
  )
    .addHelpText(
      'after',
      `
Uses blocking queries (?index=N&wait=...): the first line is the current state, then one
line per change. The index is reset when it goes backwards; errors are retried with backoff.

Examples:
  hexmesh kv watch app/maxconn
  hexmesh kv watch app/ --prefix`,
    )
    .action(async (key: string, opts: ControlOpts & { prefix?: boolean; count?: number; wait: string }) => {
      await runWithClient('kv watch', opts, async (client) => {
        const waitMs = parseDuration(opts.wait);
        if (waitMs === undefined)
          throw new CliFailure(`--wait must be a duration (got ${JSON.stringify(opts.wait)})`, EXIT.USAGE);
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        const onError = (err: unknown, ms: number) =>
          process.stderr.write(`hexmesh kv watch: ${(err as Error).message}; retrying in ${ms} ms\n`);
        let printed = 0;
        const emit = (line: string) => {
          process.stdout.write(`${line}\n`);
          if (opts.count !== undefined && ++printed >= opts.count) stop.abort();
        };
        try {
          if (opts.prefix) {
            let known = new Map<string, KvEntry>();
            let first = true;
            for await (const { body } of blockingQuery((b) => client.kvList(key, b), {
              signal: stop.signal,
              waitMs,
              onError,
            })) {
              const lines = first
                ? body.map((e) => `put ${e.key} = ${preview(e.value)} (modRevision ${e.modRevision})`)
                : kvChanges(known, body);
              if (first && lines.length === 0) lines.push(`(no keys under "${key}")`);
              first = false;
              known = new Map(body.map((e) => [e.key, e]));
              if (lines.length) emit(lines.join('\n'));
            }
          } else {
            let last: number | undefined = -1;
            for await (const { body } of blockingQuery((b) => client.kvGet(key, b), {
              signal: stop.signal,
              waitMs,
              onError,
            })) {
              const rev = body?.modRevision;
              if (rev === last) continue; // the index moved for another key: no change here
              last = rev;
              emit(
                body ? `${key} = ${preview(body.value)} (modRevision ${body.modRevision})` : `${key} absent`,
              );
            }
          }
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      });
    });
}

export function kvCommand(): Command {
  const kv = new Command('kv')
    .description('read, write, list and watch keys in the control plane KV store')
    .addCommand(kvGet())
    .addCommand(kvPut())
    .addCommand(kvDelete())
    .addCommand(kvLs())
    .addCommand(kvWatch())
    .addHelpText(
      'after',
      '\nExamples:\n  hexmesh kv put app/maxconn 100\n  hexmesh kv get app/maxconn\n  hexmesh kv ls app/',
    );
  // Usage errors in sub-commands must reach main (exit 2), not exit inside commander.
  for (const c of kv.commands) c.exitOverride().showHelpAfterError('(run with --help for usage)');
  return kv;
}
