/**
 * Every process the benchmark starts lives in one ProcessGroup, so that all of them are
 * ended at the end of a run, on error, on Ctrl-C and on `process.exit`.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** Last bytes of a child's stderr and stdout kept for error messages. */
const TAIL_BYTES = 4096;

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last few KiB the child wrote to stdout and stderr, for failure reasons. */
  tail(): string;
  /** Resolves with the exit code (or signal name) once the child has exited. */
  readonly exited: Promise<number | string>;
  /** True once the child has exited. */
  hasExited(): boolean;
}

export class ProcessGroup {
  private readonly members = new Set<Managed>();
  private readonly onExit = (): void => this.killNow();
  private closed = false;

  constructor() {
    // 'exit' handlers must be synchronous: SIGKILL whatever is still running.
    process.on('exit', this.onExit);
  }

  /** Spawn a child; stdout is left readable for the caller when `keepStdout` is set. */
  start(
    name: string,
    cmd: string,
    args: readonly string[],
    opts: SpawnOptions & { keepStdout?: boolean } = {},
  ): Managed {
    if (this.closed) throw new Error(`process group closed; cannot start ${name}`);
    const { keepStdout, ...spawnOpts } = opts;
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOpts });
    let tail = '';
    const keep = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
    };
    child.stderr?.on('data', keep);
    if (!keepStdout) child.stdout?.on('data', keep);
    let done = false;
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => {
        done = true;
        resolve(code ?? signal ?? 'unknown');
      });
      child.once('error', (err) => {
        done = true;
        keep(Buffer.from(`spawn error: ${err.message}\n`));
        resolve(`spawn error: ${err.message}`);
      });
    });
    const m: Managed = {
      name,
      child,
      pid: child.pid ?? -1,
      tail: () => tail,
      exited,
      hasExited: () => done,
    };
    this.members.add(m);
    void exited.then(() => this.members.delete(m));
    return m;
  }

  /** SIGTERM, then SIGKILL after `graceMs` if it is still there. */
  async stop(m: Managed, graceMs = 2000): Promise<void> {
    if (m.hasExited()) return;
    m.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const r = await Promise.race([m.exited, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout' && !m.hasExited()) {
      m.child.kill('SIGKILL');
      await m.exited;
    }
  }

  /** Stop every member still running. */
  async close(): Promise<void> {
    await Promise.all([...this.members].map((m) => this.stop(m)));
    this.closed = true;
    process.off('exit', this.onExit);
  }

  private killNow(): void {
    for (const m of this.members) {
      if (!m.hasExited()) {
        try {
          m.child.kill('SIGKILL');
        } catch {}
      }
    }
  }
}
