import type { Readable } from 'node:stream';

// Shared no-op: the error a destroyed body may emit (undici: UND_ERR_ABORTED) is expected.
function ignore(): void {}

/**
 * Throw away a response body nobody will read (a late response, a response discarded for a
 * retry): destroy it so its connection or stream is freed now rather than stalling on
 * back-pressure. Bounded, unlike draining a body of unknown size. Its error event, which some
 * producers (undici) emit on destroy, is swallowed so it cannot crash the process.
 */
export function discardBody(body: Readable | null | undefined): void {
  if (!body || body.destroyed) return;
  body.on('error', ignore);
  body.destroy();
}
