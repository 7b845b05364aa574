/** `hexmesh control` as a real process on a fixed port and data dir, killable (SIGKILL) and restartable. */
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from './cli.ts';

export class ControlProcess {
  #child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const child = spawn(
      process.execPath,
      [BIN, 'control', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (d: Buffer) => {
        out += d.toString();
        if (/listening on http/.test(out)) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      child.once('exit', (code) => reject(new Error(`hexmesh control exited (${code}): ${out}`)));
    });
  }
  get running(): boolean {
    const c = this.#child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }
  kill(): Promise<void> {
    const c = this.#child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    return gone;
  }
}
