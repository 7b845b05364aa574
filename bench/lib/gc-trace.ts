/**
 * GC pauses of a Node proxy, read from its `--trace-gc` lines on stdout, e.g.
 *   [123:0x5e..]   4021 ms: Scavenge 9.8 (12.1) -> 8.9 (12.6) MB, 1.21 / 0.00 ms  (average mu = ...) ...
 * The first figure after "MB," is the pause of the main thread. Counted per measured phase
 * ({@link GcTrace.begin} … {@link GcTrace.end}) so a latency tail can be set beside the pauses.
 */
import type { Readable } from 'node:stream';

export interface GcStats {
  /** Pauses in the phase (scavenges + mark-compacts). */
  count: number;
  scavenges: number;
  /** Mark-compacts, mark-sweeps and minor mark-compacts. */
  markCompacts: number;
  /** Longest pause, ms. */
  maxMs: number;
  /** All pauses added up, ms. */
  totalMs: number;
}

const LINE = /ms: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact)\b[^\n]*?MB, ([\d.]+) \/ [\d.]+ ms/;

export class GcTrace {
  #stats: GcStats = empty();
  #rest = '';

  /** Follow `stdout` of a process started with `--trace-gc`. */
  constructor(stdout: Readable) {
    stdout.setEncoding('utf8');
    stdout.on('data', (chunk: string) => {
      const lines = (this.#rest + chunk).split('\n');
      this.#rest = lines.pop() ?? '';
      for (const l of lines) this.#line(l);
    });
  }

  /** Start a phase: the counters restart at zero. */
  begin(): void {
    this.#stats = empty();
  }

  /** The pauses since {@link begin}. */
  end(): GcStats {
    return { ...this.#stats };
  }

  #line(l: string): void {
    const m = LINE.exec(l);
    if (!m) return;
    const ms = Number(m[2]);
    const s = this.#stats;
    s.count++;
    if (m[1] === 'Scavenge') s.scavenges++;
    else s.markCompacts++;
    s.totalMs += ms;
    if (ms > s.maxMs) s.maxMs = ms;
  }
}

function empty(): GcStats {
  return { count: 0, scavenges: 0, markCompacts: 0, maxMs: 0, totalMs: 0 };
}
