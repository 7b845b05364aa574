/**
 * The control plane under test, as its own process (`node bin/hexmesh.js control`), so its
 * RSS and CPU are read alone from /proc/PID.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import type { Managed, ProcessGroup } from '../lib/process-group.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface ControlProcess {
  proc: Managed;
  /** `http://127.0.0.1:port` */
  baseUrl: string;
  /** Seconds from spawn to the "listening" line (includes loading the catalog). */
  startSeconds: number;
}

/** Start `hexmesh control` on a free port; resolves once it printed its address (bounded). */
export async function startControl(
  group: ProcessGroup,
  opts: {
    dataDir: string;
    store?: string;
    timeoutMs?: number;
    nodeArgs?: readonly string[];
    viaTsx?: boolean;
  },
): Promise<ControlProcess> {
  const t0 = performance.now();
  const entry = opts.viaTsx
    ? ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')]
    : [join(ROOT, 'bin', 'hexmesh.js')];
  const args = [
    ...(opts.nodeArgs ?? []),
    ...entry,
    'control',
    '--listen',
    '127.0.0.1:0',
    '--data-dir',
    opts.dataDir,
  ];
  if (opts.store) args.push('--store', opts.store);
  const proc = group.start('control', process.execPath, args, { cwd: ROOT, keepStdout: true });
  const lines = createInterface({ input: proc.child.stdout! });
  let timer: NodeJS.Timeout | undefined;
  try {
    const baseUrl = await Promise.race([
      new Promise<string>((resolve) => {
        lines.on('line', (l) => {
          const m = /listening on (http:\/\/\S+)/.exec(l);
          if (m) resolve(m[1]);
        });
      }),
      proc.exited.then((code) => {
        throw new Error(`control plane exited (${code}) before listening:\n${proc.tail()}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(`control plane not listening within ${opts.timeoutMs ?? 60_000} ms:\n${proc.tail()}`),
            ),
          opts.timeoutMs ?? 60_000,
        );
      }),
    ]);
    // Keep draining stdout so the child never blocks on a full pipe.
    lines.on('line', () => {});
    return { proc, baseUrl, startSeconds: (performance.now() - t0) / 1000 };
  } catch (err) {
    await group.stop(proc);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
