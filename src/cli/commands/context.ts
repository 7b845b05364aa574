/**
 * `hexmesh context`: the contexts of the user's credentials file, as `kubectl config
 * get-contexts` / `use-context` / `current-context`. `hexmesh up` adds one per mesh it starts
 * and makes it current; every control-plane verb then finds the URL and token there.
 * Tokens are never printed.
 */
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import {
  readCredentials,
  saveCredentials,
  userCredentialsPath,
  type CredentialsFile,
} from '../client/credentials.ts';
import {
  CliFailure,
  formatData,
  formatTable,
  outputOption,
  runLocal,
  type ListFormat,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';

interface ContextOpts {
  credentials?: string;
}

const fileOption = [
  '--credentials <file>',
  'the credentials file (env HEXMESH_CREDENTIALS, default ~/.hexmesh/credentials)',
] as const;

function load(opts: ContextOpts): { path: string; file: CredentialsFile } {
  const path = opts.credentials || userCredentialsPath();
  if (!existsSync(path))
    throw new CliFailure(
      `no credentials file at ${path} (hexmesh up writes one; or hexmesh control's <data-dir>/credentials.json)`,
      EXIT.NOT_FOUND,
    );
  return { path, file: readCredentials(path) };
}

/** The current context's name: the file's `current`, else its first context (as resolveCredentials). */
function currentName(file: CredentialsFile): string | undefined {
  return (file.contexts.find((c) => c.name === file.current) ?? file.contexts[0])?.name;
}

export function contextCommand(): Command {
  const cmd = new Command('context').description(
    'list or switch the contexts (control plane URL + token) of your credentials file, as kubectl config',
  );
  cmd
    .command('list', { isDefault: true })
    .description('list the contexts; * marks the current one')
    .option(...fileOption)
    .addOption(outputOption(['table', 'wide', 'json', 'yaml'], 'table'))
    .action(async (opts: ContextOpts & { output: ListFormat }) => {
      await runLocal('context list', async () => {
        const { path, file } = load(opts);
        const current = currentName(file);
        if (opts.output === 'json' || opts.output === 'yaml')
          return void process.stdout.write(
            formatData(
              {
                current: current ?? null,
                contexts: file.contexts.map((c) => ({ name: c.name, control: c.control })),
              },
              opts.output,
            ),
          );
        // -o wide: whether the context carries a token (never the token), and the file it is in.
        const wide = opts.output === 'wide';
        process.stdout.write(
          formatTable(
            ['CURRENT', 'NAME', 'CONTROL', ...(wide ? ['TOKEN', 'FILE'] : [])],
            file.contexts.map((c) => [
              c.name === current ? '*' : '',
              c.name,
              c.control,
              ...(wide ? [c.token ? 'set' : 'none', path] : []),
            ]),
          ),
        );
      });
    });
  cmd
    .command('current')
    .description("print the current context's name and control plane URL")
    .option(...fileOption)
    .action(async (opts: ContextOpts) => {
      await runLocal('context current', async () => {
        const { path, file } = load(opts);
        const name = currentName(file);
        const ctx = file.contexts.find((c) => c.name === name);
        if (!ctx) throw new CliFailure(`no context in ${path}`, EXIT.NOT_FOUND);
        process.stdout.write(`${ctx.name}\t${ctx.control}\n`);
      });
    });
  cmd
    .command('use')
    .description('make context NAME the current one (the verbs use its URL and token)')
    .argument('<name>')
    .option(...fileOption)
    .action(async (name: string, opts: ContextOpts) => {
      await runLocal('context use', async () => {
        const { path, file } = load(opts);
        const ctx = file.contexts.find((c) => c.name === name);
        if (!ctx)
          throw new CliFailure(
            `no context ${JSON.stringify(name)} in ${path} (have: ${file.contexts.map((c) => c.name).join(', ') || 'none'})`,
            EXIT.NOT_FOUND,
          );
        await saveCredentials(path, { ...file, current: name });
        process.stdout.write(`switched to context ${name} (${ctx.control})\n`);
      });
    });
  cmd
    .command('delete')
    .description('remove context NAME from the file')
    .argument('<name>')
    .option(...fileOption)
    .action(async (name: string, opts: ContextOpts) => {
      await runLocal('context delete', async () => {
        const { path, file } = load(opts);
        if (!file.contexts.some((c) => c.name === name))
          throw new CliFailure(`no context ${JSON.stringify(name)} in ${path}`, EXIT.NOT_FOUND);
        const contexts = file.contexts.filter((c) => c.name !== name);
        const current = file.current === name ? contexts[0]?.name : file.current;
        await saveCredentials(path, { contexts, ...(current ? { current } : {}) });
        process.stdout.write(`deleted context ${name}\n`);
      });
    });
  for (const c of cmd.commands) c.exitOverride().showHelpAfterError('(run with --help for usage)');
  return cmd;
}
