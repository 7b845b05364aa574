/**
 * The `hexmesh` root command around a list of sub-commands: what the whole CLI (program.ts)
 * and the sidecar's `hexmesh proxy` (main.ts, which loads that one command only) share.
 */
import { Command } from 'commander';
import { hexmeshVersion } from './build-info.ts';

const HELP_HINT = '(run with --help for usage)';

export function rootCommand(commands: readonly Command[]): Command {
  const program = new Command('hexmesh')
    .description('hexmesh: a service mesh for microservices (sidecar proxy, control plane, CLI)')
    .version(hexmeshVersion())
    .showHelpAfterError(HELP_HINT)
    .exitOverride();
  for (const cmd of commands) program.addCommand(cmd);
  // addCommand() does not copy settings to sub-commands (only .command() does): without
  // this, a usage error in a sub-command exits 1 from inside commander instead of EXIT.USAGE.
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError(HELP_HINT);
  return program;
}
