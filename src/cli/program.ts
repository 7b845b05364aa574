/**
 * The `hexmesh` command tree, built without running it, so tests (the docs completeness
 * test) can walk every command and option.
 */
import { Command } from 'commander';
import { demoCommand } from './commands/demo.ts';
import { proxyCommand } from './commands/proxy.ts';
import { validateCommand } from './commands/validate.ts';
import { controlCommand } from './commands/control.ts';
import { applyCommand, deleteCommand, describeCommand, getCommand } from './commands/resources.ts';
import { deregisterCommand, endpointsCommand, registerCommand, servicesCommand } from './commands/catalog.ts';
import { kvCommand } from './commands/kv.ts';
import { templateCommand } from './commands/template.ts';
import { statCommand } from './commands/stat.ts';
import { edgesCommand } from './commands/edges.ts';
import { routesCommand } from './commands/routes.ts';
import { identityCommand } from './commands/identity.ts';
import { checkCommand } from './commands/check.ts';
import { authCommand } from './commands/auth.ts';
import { tapCommand } from './commands/tap.ts';
import { topCommand } from './commands/top.ts';
import { diagnoseCommand } from './commands/diagnose.ts';
import { dashboardCommand } from './commands/dashboard.ts';
import { rolloutCommand } from './commands/rollout.ts';
import { upCommand } from './commands/up.ts';
import { downCommand } from './commands/down.ts';
import { psCommand } from './commands/ps.ts';
import { logsCommand } from './commands/logs.ts';
import { awaitCommand } from './commands/await.ts';
import { versionCommand } from './commands/version.ts';
import { installCommand } from './commands/install.ts';
import { contextCommand } from './commands/context.ts';
import { diffCommand } from './commands/diff.ts';
import { completionCommand } from './commands/completion.ts';
import { captureCommand } from './commands/capture.ts';
import { hexmeshVersion } from './build-info.ts';

const HELP_HINT = '(run with --help for usage)';

export function buildCli(): Command {
  const program = new Command('hexmesh')
    .description('hexmesh: a service mesh for microservices (sidecar proxy, control plane, CLI)')
    .version(hexmeshVersion())
    .showHelpAfterError(HELP_HINT)
    .exitOverride();
  program.addCommand(proxyCommand());
  program.addCommand(validateCommand());
  program.addCommand(demoCommand());
  program.addCommand(controlCommand());
  program.addCommand(applyCommand());
  program.addCommand(getCommand());
  program.addCommand(deleteCommand());
  program.addCommand(describeCommand());
  program.addCommand(servicesCommand());
  program.addCommand(endpointsCommand());
  program.addCommand(kvCommand());
  program.addCommand(registerCommand());
  program.addCommand(deregisterCommand());
  program.addCommand(templateCommand());
  program.addCommand(statCommand());
  program.addCommand(edgesCommand());
  program.addCommand(routesCommand());
  program.addCommand(identityCommand());
  program.addCommand(checkCommand());
  program.addCommand(authCommand());
  program.addCommand(tapCommand());
  program.addCommand(topCommand());
  program.addCommand(diagnoseCommand());
  program.addCommand(dashboardCommand());
  program.addCommand(upCommand());
  program.addCommand(rolloutCommand());
  program.addCommand(downCommand());
  program.addCommand(psCommand());
  program.addCommand(logsCommand());
  program.addCommand(awaitCommand());
  program.addCommand(versionCommand());
  program.addCommand(installCommand());
  program.addCommand(contextCommand());
  program.addCommand(diffCommand());
  program.addCommand(completionCommand());
  program.addCommand(captureCommand());
  // addCommand() does not copy settings to sub-commands (only .command() does): without
  // this, a usage error in a sub-command exits 1 from inside commander instead of EXIT.USAGE.
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError(HELP_HINT);
  return program;
}
