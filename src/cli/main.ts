/**
 * The `hexmesh` command line. Every command and sub-command has `--help`; errors print
 * one clear message (with every problem for invalid config) and exit non-zero.
 */
import { CommanderError } from 'commander';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import { ConfigError } from '../config/config-error.ts';
import { EXIT } from './exit-codes.ts';
import { rootCommand } from './root.ts';

/** Commands that run as services: their output going away must not stop them. */
const DAEMONS = new Set(['proxy', 'control', 'up', 'demo']);

/**
 * A reader that goes away (`hexmesh install --kubernetes | head`, `hexmesh tap | grep -m1`)
 * closes the pipe: a one-shot command ends quietly, as with SIGPIPE in a C program, instead
 * of crashing on the write's EPIPE; a service keeps running without its output.
 */
function onClosedOutput(argv: string[]): void {
  const daemon = DAEMONS.has(argv[2] ?? '');
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      if (!daemon) process.exit(process.exitCode ?? 0);
    });
  }
}

export async function main(argv: string[]): Promise<void> {
  onClosedOutput(argv);
  try {
    // The sidecar loads its own command only: the rest of the CLI (every command's code, the
    // control-plane client, yaml, zod) would cost each proxy process ~10 MiB it never uses.
    const program =
      argv[2] === 'proxy'
        ? rootCommand([(await import('./commands/proxy.ts')).proxyCommand()])
        : (await import('./program.ts')).buildCli();
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : EXIT.USAGE;
      return;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`hexmesh: ${err.message}\n`);
      process.exitCode = EXIT.CONFIG;
      return;
    }
    if (err instanceof HexmeshError) {
      process.stderr.write(`hexmesh: ${err.message} [${err.code}]\n`);
      process.exitCode = EXIT.RUNTIME;
      return;
    }
    process.stderr.write(`hexmesh: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = EXIT.RUNTIME;
  }
}

await main(process.argv);
