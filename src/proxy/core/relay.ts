/**
 * A one-way copy of a body into a writable, with backpressure, ending it at the body's end:
 * what `src.pipe(dest)` does on the HTTP/2 paths, for two listeners instead of pipe's seven
 * or eight (each added and removed per stream through Node's emitter, issue 11).
 *
 * Errors and early closes stay the caller's: neither side is destroyed here. Unlike pipe, the
 * copy does not stop by itself when `dest` closes early: the caller destroys `src` or calls
 * `stop()` then, and `dest` keeps an 'error' listener for a write that lands after it was
 * destroyed (the HTTP/2 listener's streams and request bodies have one for their lifetime).
 */
import type { Readable, Writable } from 'node:stream';

export class Relay {
  #waiting = false;

  constructor(
    readonly src: Readable,
    readonly dest: Writable,
  ) {
    src.on('data', this.#onData);
    src.once('end', this.#onEnd);
  }

  readonly #onData = (chunk: Buffer | string): void => {
    if (this.dest.write(chunk) || this.#waiting) return;
    this.#waiting = true;
    this.src.pause();
    this.dest.once('drain', this.#onDrain);
  };

  readonly #onDrain = (): void => {
    this.#waiting = false;
    this.src.resume();
  };

  readonly #onEnd = (): void => {
    if (this.#waiting) this.dest.off('drain', this.#onDrain);
    this.dest.end();
  };

  /** Stop copying: no more writes to `dest`, and `src` is not ended into it. */
  stop(): void {
    this.src.off('data', this.#onData);
    this.src.off('end', this.#onEnd);
    if (this.#waiting) {
      this.#waiting = false;
      this.dest.off('drain', this.#onDrain);
    }
  }
}

/** Copy `src` into `dest` and end it (see {@link Relay}). */
export function relay(src: Readable, dest: Writable): Relay {
  return new Relay(src, dest);
}
