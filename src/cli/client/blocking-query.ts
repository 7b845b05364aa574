/**
 * Consul-style blocking queries from the client side: repeat a read with `?index=N&wait=…`,
 * hand on each answer whose index moved, reset when the index goes backwards (a store
 * restored or compacted, another replica behind), and back off on errors instead of
 * spinning. A returned answer does not promise a change: callers compare content.
 */
import type { Answer, BlockOptions } from './control-client.ts';

export interface BlockingOptions {
  signal: AbortSignal;
  /** Wait per query (default 60 s; the server caps at 10 min). */
  waitMs?: number;
  /** Told about each failed read before the retry (the loop goes on). */
  onError?: (err: unknown, retryInMs: number) => void;
  /** Retry delay after a failure: doubles from min to max (defaults 250 ms .. 10 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * The index to block on next, given the last one and the one just answered. An index that
 * went backwards restarts at the answered one (the answer itself is fresh data); a missing
 * or non-positive one restarts at 0, i.e. the next read does not block — as Consul asks
 * clients to do, so a reset never leaves a watcher blocked on a revision that will not come.
 */
export function nextIndex(last: number, answered: number | undefined): number {
  if (answered === undefined || !Number.isSafeInteger(answered) || answered <= 0) return 0;
  return answered;
}

/** Whether an answer is worth handing on: the first one, or one whose index differs. */
export function indexMoved(last: number, answered: number | undefined, first: boolean): boolean {
  return first || answered === undefined || answered !== last;
}

/** Yields `{body, index}` for the first read and each one whose index moved, until `signal` aborts. */
export async function* blockingQuery<T>(
  read: (b: BlockOptions) => Promise<Answer<T>>,
  opts: BlockingOptions,
): AsyncGenerator<{ body: T; index: number }> {
  const waitMs = opts.waitMs ?? 60_000;
  const minB = opts.minBackoffMs ?? 250;
  const maxB = opts.maxBackoffMs ?? 10_000;
  let index = 0;
  let first = true;
  let backoff = minB;
  while (!opts.signal.aborted) {
    let a: Answer<T>;
    try {
      a = await read({ index, waitMs, signal: opts.signal });
    } catch (err) {
      if (opts.signal.aborted) return;
      opts.onError?.(err, backoff);
      await sleep(backoff, opts.signal);
      backoff = Math.min(maxB, backoff * 2);
      continue;
    }
    backoff = minB;
    const moved = indexMoved(index, a.index, first);
    first = false;
    index = nextIndex(index, a.index);
    if (moved) yield { body: a.body, index };
    // An index that did not move after a non-blocking read (index 0) would spin: wait a little.
    if (index === 0) await sleep(minB, opts.signal);
  }
}

/** setTimeout as a promise that resolves early (never rejects) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
