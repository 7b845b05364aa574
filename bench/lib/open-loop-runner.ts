/**
 * Drives bench/open-loop.ts as a child process: waits for its warm-up to finish, calls
 * `atStart` (to sample CPU counters), lets it run the measured phase, then calls `atEnd`.
 */
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { OpenLoopResult } from '../open-loop.ts';
import type { ProcessGroup } from './process-group.ts';
import type { Protocol } from './senders.ts';

const SCRIPT = resolve(import.meta.dirname, '..', 'open-loop.ts');

export interface OpenLoopRun {
  origin: string;
  host: string;
  rate: number;
  durationS: number;
  connections: number;
  warmupS: number;
  protocol: Protocol;
  /** Closed loop (one request in flight per connection) instead of a fixed rate. */
  closed?: boolean;
  atStart(): void;
  atEnd(): void;
}

export async function runOpenLoop(group: ProcessGroup, o: OpenLoopRun): Promise<OpenLoopResult> {
  const p = group.start(
    'open-loop',
    process.execPath,
    [
      '--import',
      'tsx',
      SCRIPT,
      '--url',
      `${o.origin}/`,
      '--host',
      o.host,
      '--rate',
      String(o.rate),
      '--duration',
      String(o.durationS),
      '--connections',
      String(o.connections),
      '--warmup',
      String(o.warmupS),
      '--protocol',
      o.protocol,
      ...(o.closed ? ['--closed'] : []),
    ],
    { keepStdout: true },
  );
  // Bounded: warm-up + run + 10 s drain + start-up margin.
  const limitMs = (o.warmupS + o.durationS + 40) * 1000;
  const timer = setTimeout(() => p.child.kill('SIGKILL'), limitMs);
  let result: OpenLoopResult | undefined;
  let started = false;
  const rl = createInterface({ input: p.child.stdout! });
  rl.on('line', (line) => {
    let msg: { event?: string } & Partial<OpenLoopResult>;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.event === 'warm' && !started) {
      started = true;
      o.atStart();
      p.child.stdin?.write('go\n');
    } else if (msg.event === 'result') {
      o.atEnd();
      const { event: _event, ...rest } = msg;
      result = rest as OpenLoopResult;
    }
  });
  const code = await p.exited;
  clearTimeout(timer);
  rl.close();
  if (!result)
    throw new Error(`open-loop generator exited with ${code} without a result: ${p.tail().slice(-600)}`);
  return result;
}
