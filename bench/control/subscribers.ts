/** Parent side of the subscriber worker processes (subscriber-worker.ts): spawn, command, collect, stop. */
import { join } from 'node:path';
import type { Managed, ProcessGroup } from '../lib/process-group.ts';
import type { ConnectCommand, ParentMessage, WorkerMessage } from './worker-protocol.ts';

const WORKER = join(import.meta.dirname, 'subscriber-worker.ts');

export class SubscriberWorker {
  readonly proc: Managed;
  readonly #waiting = new Map<WorkerMessage['type'], (m: WorkerMessage) => void>();

  private constructor(proc: Managed) {
    this.proc = proc;
    proc.child.on('message', (raw) => {
      const m = raw as WorkerMessage;
      const w = this.#waiting.get(m.type);
      if (w) {
        this.#waiting.delete(m.type);
        w(m);
      }
    });
  }

  /** Spawn one worker; resolves when it is ready for commands (bounded). */
  static async start(group: ProcessGroup, name: string): Promise<SubscriberWorker> {
    const proc = group.start(name, process.execPath, ['--import', 'tsx', WORKER], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Structured clone: NaN (not seen) survives the trip, JSON would turn it into null.
      serialization: 'advanced',
    });
    const w = new SubscriberWorker(proc);
    await w.#expect('ready', 30_000);
    return w;
  }

  /** Send a command and wait for the answer of type `reply` (rejects after `timeoutMs` or if the worker dies). */
  request<T extends WorkerMessage['type']>(
    msg: ParentMessage,
    reply: T,
    timeoutMs: number,
  ): Promise<Extract<WorkerMessage, { type: T }>> {
    const p = this.#expect(reply, timeoutMs);
    this.proc.child.send(msg);
    return p;
  }

  #expect<T extends WorkerMessage['type']>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<WorkerMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(type);
        reject(new Error(`${this.proc.name}: no '${type}' within ${timeoutMs} ms\n${this.proc.tail()}`));
      }, timeoutMs);
      void this.proc.exited.then((code) => {
        if (!this.#waiting.has(type)) return;
        clearTimeout(timer);
        this.#waiting.delete(type);
        reject(new Error(`${this.proc.name} exited (${code}) waiting for '${type}'\n${this.proc.tail()}`));
      });
      this.#waiting.set(type, (m) => {
        clearTimeout(timer);
        resolve(m as Extract<WorkerMessage, { type: T }>);
      });
    });
  }

  connect(cmd: ConnectCommand, timeoutMs: number): Promise<Extract<WorkerMessage, { type: 'connected' }>> {
    return this.request(cmd, 'connected', timeoutMs);
  }

  /** Close every socket cleanly (code 1000), then stop the process (bounded). */
  async close(group: ProcessGroup): Promise<void> {
    if (!this.proc.hasExited()) await this.request({ type: 'close' }, 'closed', 15_000).catch(() => {});
    await group.stop(this.proc, 3000);
  }
}
