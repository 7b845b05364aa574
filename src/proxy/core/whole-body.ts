/**
 * Bodies that arrived whole with their headers. A small upstream response is usually read in
 * one go: its last chunk is already buffered when the response reaches the listener. Such a
 * body is written at once instead of being piped (a pipe sets up flowing mode, five listeners
 * per side and a write per chunk: ~16 µs per request, issue 11).
 */
import type { Readable } from 'node:stream';

/** A body that holds its chunks and hands them over whole (H1Transport's does). */
interface WholeSource {
  takeWhole?(): Buffer | null | undefined;
}

/** A producer sets `complete` on its body once the last chunk is pushed. */
export interface CompletableBody {
  complete?: boolean;
}

/**
 * The whole of `body` taken off the stream (null when it is empty), or undefined when it is
 * not whole yet or someone else already reads it. Taking it ends the stream as reading it to
 * the end would ('end' listeners still run).
 */
export function takeWhole(body: Readable): Buffer | null | undefined {
  if (typeof (body as WholeSource).takeWhole === 'function') return (body as WholeSource).takeWhole!();
  if (
    (body as CompletableBody).complete !== true ||
    body.readableFlowing !== null ||
    body.destroyed ||
    body.readableObjectMode
  )
    return undefined;
  return body.read() as Buffer | null;
}
