import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { StoreUnavailableError } from './store.ts';
import { isRunning } from '../util/process-state.ts';

/**
 * An exclusive lock file next to the embedded database: SQLite on one file is safe for
 * one hexmesh process only (its in-process watch fan-out and lease timers would not see
 * another process's writes). Holds the owner's pid; a lock left by a dead process is
 * taken over.
 */
export class LockFile {
  readonly path: string;
  #held = true;

  private constructor(path: string) {
    this.path = path;
  }

  /** Take the lock or throw StoreUnavailableError naming the process that holds it. */
  static acquire(path: string, what: string): LockFile {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        try {
          writeSync(fd, `${process.pid}\n`);
        } finally {
          closeSync(fd);
        }
        return new LockFile(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new StoreUnavailableError(`cannot create lock file ${path}: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
      const owner = readOwner(path);
      if (owner !== undefined && isRunning(owner)) {
        throw new StoreUnavailableError(
          `${what} is in use by process ${owner} (lock file ${path}): the embedded store supports one process per data directory; ` +
            `stop the other process, or run several control planes against etcd (--store etcd://host:2379,...)`,
        );
      }
      // Stale lock from a process that died without cleaning up: remove it and retry once.
      try {
        unlinkSync(path);
      } catch {
        // Another process may have removed it first; the retry decides.
      }
    }
    throw new StoreUnavailableError(`cannot take lock file ${path}: another process keeps taking it`);
  }

  /** Remove the lock file. Idempotent. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone (e.g. the data dir was removed): nothing to release.
    }
  }
}

function readOwner(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
