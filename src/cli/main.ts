/**
 * The `hexmesh` command line. Every command and sub-command has `--help`; errors print
 * one clear message (with every problem for invalid config) and exit non-zero.
 */
import { CommanderError } from 'commander';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import { ConfigError } from '../config/load.ts';
import { EXIT } from './exit-codes.ts';
import { buildCli } from './program.ts';

export { buildCli };

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
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
