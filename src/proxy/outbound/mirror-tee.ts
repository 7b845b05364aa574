/**
 * A request body shared by the real request and its mirrored copies (RequestMirror). The real
 * request's stream keeps the source's back-pressure; a copy is best effort and never slows it:
 * one that falls more than {@link MAX_MIRROR_LAG} bytes behind is cut off (its mirror request
 * fails, unseen — a mirror's failure never affects the real request).
 */
import { PassThrough, type Readable } from 'node:stream';

/** How far (bytes) a mirror's copy of the body may fall behind before it is dropped. */
export const MAX_MIRROR_LAG = 64 * 1024;

function ignoreError(): void {}

export function teeBody(source: Readable, copies: number): { primary: Readable; copies: Readable[] } {
  const primary = new PassThrough();
  const mirrors = Array.from({ length: copies }, () => new PassThrough().on('error', ignoreError));
  source.on('data', (chunk: Buffer) => {
    for (const m of mirrors) {
      if (m.destroyed) continue;
      if (m.readableLength + m.writableLength > MAX_MIRROR_LAG)
        m.destroy(new Error('mirror copy fell behind'));
      else m.write(chunk);
    }
    if (!primary.write(chunk)) source.pause();
  });
  primary.on('drain', () => source.resume());
  source.once('end', () => {
    primary.end();
    for (const m of mirrors) if (!m.destroyed) m.end();
  });
  source.once('error', (err: Error) => {
    primary.destroy(err);
    for (const m of mirrors) m.destroy(err);
  });
  return { primary, copies: mirrors };
}
