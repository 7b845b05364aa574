/**
 * The `hexmesh` command tree, built without running it, so tests (the docs completeness
 * test) can walk every command and option.
 */
import type { Command } from 'commander';
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
import { rootCommand } from './root.ts';

export function buildCli(): Command {
  return rootCommand([
    proxyCommand(),
    validateCommand(),
    demoCommand(),
    controlCommand(),
    applyCommand(),
    getCommand(),
    deleteCommand(),
    describeCommand(),
    servicesCommand(),
    endpointsCommand(),
    kvCommand(),
    registerCommand(),
    deregisterCommand(),
    templateCommand(),
    statCommand(),
    edgesCommand(),
    routesCommand(),
    identityCommand(),
    checkCommand(),
    authCommand(),
    tapCommand(),
    topCommand(),
    diagnoseCommand(),
    dashboardCommand(),
    upCommand(),
    rolloutCommand(),
    downCommand(),
    psCommand(),
    logsCommand(),
    awaitCommand(),
    versionCommand(),
    installCommand(),
    contextCommand(),
    diffCommand(),
    completionCommand(),
    captureCommand(),
  ]);
}
