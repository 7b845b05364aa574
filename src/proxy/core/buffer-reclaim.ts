/**
 * Keeps the proxy's memory flat while large bodies stream through it.
 *
 * Every socket read allocates a fresh buffer (64 KiB for a bulk transfer), which the proxy
 * writes on and drops. V8 frees such buffers only when a young-generation GC runs, and with
 * almost no JavaScript allocation per chunk that GC comes from V8's external-memory trigger:
 * once 2 × 16 MiB of young buffers are pending. So a body of any size grew each proxy's RSS
 * by ~32 MiB (measured: the same for 100 and 300 MiB bodies, and with a slow reader, so
 * back-pressure holds and nothing is buffered; the memory is dead buffers waiting for a GC).
 *
 * The fix asks V8 for a young-generation GC (a scavenge: it only visits live young objects,
 * well under a millisecond here) after every {@link RECLAIM_BYTES} of relayed body data, so
 * at most that much dead buffer memory is pending. Small responses never count: the
 * listeners only watch bodies that may be large.
 */
import type { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Relayed body bytes between two young-generation GCs. */
export const RECLAIM_BYTES = 4 * 1024 * 1024;
/** Bodies announced smaller than this are not watched (the 1 KiB responses of an API). */
const WATCH_ABOVE = 256 * 1024;

type MinorGc = (options: { type: 'minor' }) => void;

let gc: MinorGc | null | undefined;
let pending = 0;

function loadGc(): MinorGc | null {
  try {
    // `--expose-gc` set now installs `gc` in contexts created from here on, not in the main
    // one: the function is reachable from this module only.
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as MinorGc;
  } catch {
    return null;
  }
}

function onChunk(chunk: Buffer | string): void {
  pending += chunk.length;
  if (pending < RECLAIM_BYTES) return;
  pending = 0;
  if (gc === undefined) gc = loadGc();
  gc?.({ type: 'minor' });
}

function countWhenFlowing(this: Readable): void {
  this.on('data', onChunk);
}

/**
 * Count `body`'s chunks towards the next young-generation GC, unless its length is known to
 * be small. Response bodies (piped by the listeners) and request bodies (read by a transport)
 * alike: a body not flowing yet is counted from its 'resume' (emitted before its first chunk
 * flows), so the 'data' listener never starts a flow nobody reads.
 */
export function reclaimWhileStreaming(body: Readable, contentLength: string | string[] | undefined): void {
  if (typeof contentLength === 'string' && Number(contentLength) < WATCH_ABOVE) return;
  if (body.readableFlowing === true) body.on('data', onChunk);
  else body.once('resume', countWhenFlowing);
}
