/** `hexmesh version`: the version and the git commit this build came from. */
import { Command } from 'commander';
import { buildInfo } from '../build-info.ts';

export function versionCommand(): Command {
  return new Command('version')
    .description('print the version and the git commit it was built from')
    .option('-o, --output <format>', 'text or json', 'text')
    .action((opts: { output: string }) => {
      const info = buildInfo();
      if (opts.output === 'json') process.stdout.write(`${JSON.stringify(info)}\n`);
      else process.stdout.write(`hexmesh ${info.version} (commit ${info.commit}, ${info.build} build)\n`);
    });
}
