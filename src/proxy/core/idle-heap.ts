/**
 * Gives V8's young generation back once the sidecar goes quiet after load.
 *
 * Under load V8 grows the young generation (up to 2 × 16 MiB semi-spaces on Node 20) and only
 * shrinks it at a garbage collection that finds allocation slow. A sidecar that goes quiet
 * allocates almost nothing, so no collection comes, and V8's memory reducer, armed only by
 * mark-compacts (none run at 1000 rps over HTTP/1.1), never starts: after a burst, each proxy
 * kept 25–50 MiB more than idle for as long as it stayed quiet (issue 11, `bench/run.ts
 * --settle 20`, docs/benchmark.md). Here, once the event loop goes quiet, a scavenge is asked
 * for, and another 5.5 s later (why two: `returnYoungGenerationWhenIdle`); at that one V8 finds
 * allocation slow, shrinks the young generation itself and returns its pages. A scavenge of a
 * quiet heap takes a few milliseconds at most (0.6–6.5 ms measured); they run only when there
 * is something to give back, and stop when it is given.
 *
 * V8 offers no collection to JavaScript without `--expose-gc`: the flag is set just long enough
 * to take the `gc` function from a fresh context, as it is needed (never, for a sidecar that is
 * never busy), then cleared again so no later context sees it.
 */
import { performance } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface IdleHeapOptions {
  /** How long the event loop must stay quiet before the first scavenge (ms). */
  quietMs?: number;
  /** Time between scavenges in a quiet spell: longer than V8's 5 s rate window (ms). */
  windowMs?: number;
  /** How often the event loop's utilization is read (ms). */
  tickMs?: number;
  /**
   * Utilization over a tick above which the proxy counts as busy (0–1). At 1 %, what follows a
   * load (connections closing) restarted the quiet spell in the bench and delayed the return.
   */
  busyUtilization?: number;
  /** Told each time memory was given back: the young generation before and after, in bytes. */
  onReturn?: (before: number, after: number) => void;
}

/** Scavenges asked for in one quiet spell, at most. */
const MAX_SCAVENGES = 4;

type Collect = (options?: { type: 'minor' | 'major' }) => void;

let collect: Collect | undefined;

/** V8's `gc` function, from a context made while `--expose-gc` is set. */
function collector(): Collect {
  if (collect) return collect;
  const own = (globalThis as { gc?: Collect }).gc;
  if (own) return (collect = own);
  setFlagsFromString('--expose-gc');
  try {
    collect = runInNewContext('gc') as Collect;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  return collect;
}

/** The young generation's reserved size (V8's `new_space`), in bytes. */
export function youngGenerationBytes(): number {
  for (const s of getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.space_size;
  return 0;
}

/**
 * Watch the event loop from now on; returns a function that stops watching. The young
 * generation's size now is taken as its resting size (call it once the proxy serves).
 *
 * V8 decides at the end of a scavenge, from the allocation-rate samples of the collections
 * before it (the last 5 s of them), and each sample runs from the collection before. After load,
 * the newest sample holds whatever the load allocated after its last scavenge (up to a whole
 * semi-space, so the rate looks high). So the first scavenge, once quiet, closes that sample and
 * empties the young generation; the next, `windowMs` later (more than 5 s), finds allocation
 * slow and shrinks (seen: two scavenges, 32 → 1 MiB). While the young generation has not shrunk,
 * one more comes every `windowMs`, at most `MAX_SCAVENGES` in a quiet spell.
 */
export function returnYoungGenerationWhenIdle(opts: IdleHeapOptions = {}): () => void {
  const quietMs = opts.quietMs ?? 1_000;
  const windowMs = opts.windowMs ?? 5_500;
  const busy = opts.busyUtilization ?? 0.05;
  const resting = youngGenerationBytes();
  let last = performance.eventLoopUtilization();
  let quietSince = performance.now();
  let lastAt = -Infinity; // when this spell's last scavenge ran
  let scavenges = 0; // asked for this spell; MAX_SCAVENGES once done
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const spell = performance.eventLoopUtilization(now, last);
    last = now;
    const t = performance.now();
    if (spell.utilization > busy) {
      quietSince = t;
      lastAt = -Infinity;
      scavenges = 0;
      return;
    }
    if (scavenges >= MAX_SCAVENGES || t - quietSince < quietMs || t - lastAt < windowMs) return;
    const before = youngGenerationBytes();
    if (before <= resting) {
      scavenges = MAX_SCAVENGES; // nothing to give back until the proxy is busy again
      return;
    }
    collector()({ type: 'minor' });
    scavenges++;
    lastAt = t;
    const after = youngGenerationBytes();
    if (after < before) {
      scavenges = MAX_SCAVENGES;
      opts.onReturn?.(before, after);
    }
  }, opts.tickMs ?? 1_000);
  timer.unref();
  return () => clearInterval(timer);
}
