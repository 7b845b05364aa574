/**
 * One request through the HTTP/1.1 hop, from dispatch to the end of its response body: the
 * promise the transport returns, the response body stream, the cancellation signal, and
 * whether a failure may be sent again on another connection (the keep-alive race).
 *
 * The keep-alive race: an origin may close an idle keep-alive connection just as the next
 * request is written on it. A bodiless idempotent request that then fails on a reused
 * connection before any response byte arrived is sent again at once on another connection, as
 * Go's net/http Transport does (`shouldRetryRequest`: reused connection, nothing read,
 * replayable request) — the origin saw no complete exchange, and an idempotent method may be
 * repeated anyway (RFC 9110 §9.2.2).
 */
import { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { fromSocketError } from '../../errors/hexmesh-error.ts';
import type { CancelSignal } from '../core/cancel.ts';
import type { HeaderMap, MeshRequest, MeshResponse } from '../core/dispatch.ts';
import type { H1Connection } from './h1-connection.ts';

/** What an exchange needs from the pool that sends it. */
export interface ExchangeDispatcher {
  dispatch(ex: H1Exchange): void;
  /** Take a queued exchange out of the queue (its signal aborted); false if it was not queued. */
  unqueue(ex: H1Exchange): boolean;
}

/**
 * Most times one request is sent again after stale keep-alive connections. Each retry takes
 * another pooled (or a new) connection, so this bounds the work when many went stale at once.
 */
const MAX_STALE_RETRIES = 3;

/** Methods that may be repeated (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** What the abort listener is registered with (one shared options object). */
const ONCE = { once: true } as const;

function noop(): void {}

/** The error of a body closed before its end, when no other reason is known. */
export function abortedError(): Error {
  const err = new Error('request aborted') as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  return err;
}

function abortReason(signal: CancelSignal): Error {
  return (signal.reason as Error | undefined) ?? abortedError();
}

export class H1Exchange {
  readonly trailers: HeaderMap = {};
  /** The promise is settled (response or error). */
  settled = false;
  /** Why the signal aborted this exchange, once it did. */
  reason: Error | null = null;
  /** Times this request was sent again after a stale connection. */
  staleRetries = 0;
  #conn: H1Connection | null = null;
  #body: H1Body | null = null;
  /** The response made but not yet delivered. */
  #response: MeshResponse | null = null;
  #listening = false;

  constructor(
    readonly pool: ExchangeDispatcher,
    readonly req: MeshRequest,
    readonly signal: CancelSignal | undefined,
    readonly target: string,
    readonly resolve: (res: MeshResponse) => void,
    readonly reject: (err: unknown) => void,
  ) {
    if (signal === undefined) return;
    if (signal.aborted) {
      this.reason = abortReason(signal);
      this.fail(this.reason, false);
      return;
    }
    signal.addEventListener('abort', this, ONCE);
    this.#listening = true;
  }

  /** The signal's abort listener (the exchange itself: no closure). */
  handleEvent(): void {
    this.#listening = false;
    const reason = abortReason(this.signal!);
    this.reason = reason;
    if (this.#body !== null && !this.settled) {
      // Aborted between the head and its delivery: fail the promise; destroying the body
      // (queued by fail) closes the connection.
      this.fail(reason, false);
    } else if (this.#body !== null) {
      this.#body.on('error', noop);
      this.#body.destroy(reason); // the body's _destroy closes the connection
    } else if (this.#conn !== null) this.#conn.abort(this, reason);
    else if (this.pool.unqueue(this)) this.fail(reason, false);
  }

  /** A connection carries this exchange now. */
  attach(conn: H1Connection): void {
    this.#conn = conn;
  }

  /**
   * The response head arrived: a body the connection feeds. The promise is settled by
   * {@link deliver} once the parser is through the read that carried the head, not from inside
   * the parser's callback: Node runs queued microtasks after each callback of a parser that
   * reads the socket's handle, so a response settled there reached the listener before its
   * body, even when the whole response came in one read, and was streamed instead of written
   * whole (issue 11: one more write per proxy per request).
   */
  respond(status: number, headers: HeaderMap): H1Body {
    const body = new H1Body(this, this.#conn!);
    this.#body = body;
    this.#response = { status, headers, body, trailers: this.trailers };
    return body;
  }

  /** Settle the promise with the response {@link respond} made (once). */
  deliver(): void {
    const res = this.#response;
    if (res === null || this.settled) return;
    this.#response = null;
    this.settled = true;
    this.resolve(res);
  }

  /** The response ended; the connection no longer carries this exchange. */
  finished(): void {
    this.#conn = null;
  }

  /**
   * The exchange failed: send it again (stale connection, see the module comment), or reject
   * the promise / destroy the response body, and destroy the request body.
   * `staleConnection`: it failed on a reused connection with nothing of a response read.
   */
  fail(err: Error, staleConnection: boolean): void {
    this.#conn = null;
    if (
      staleConnection &&
      !this.settled &&
      this.staleRetries < MAX_STALE_RETRIES &&
      this.req.body === null &&
      this.reason === null &&
      IDEMPOTENT.has(this.req.method)
    ) {
      this.staleRetries++;
      // Out of the failed connection's event: it finishes closing first.
      queueMicrotask(() => this.pool.dispatch(this));
      return;
    }
    this.#response = null;
    if (!this.settled) {
      this.settled = true;
      this.reject(fromSocketError(err, this.target, this.req.ctx.dstService));
    }
    const body = this.#body;
    if (body !== null) {
      this.#body = null;
      // After the handlers already queued, so buffered chunks are not cut short.
      queueMicrotask(() => {
        body.on('error', noop);
        body.destroy(err);
      });
    }
    const reqBody = this.req.body;
    if (reqBody !== null && !reqBody.destroyed) {
      reqBody.on('error', noop);
      // Destroying a server request must not close its socket (the client gets the error response).
      if (Object.getPrototypeOf(reqBody).constructor === IncomingMessage)
        (reqBody as unknown as { socket: unknown }).socket = null;
      reqBody.destroy(err);
    }
    this.release();
  }

  /** Stop listening to the signal: the body closed or the request failed. */
  release(): void {
    if (this.#listening) {
      this.#listening = false;
      this.signal!.removeEventListener('abort', this);
    }
  }
}

type ReadableEnds = { _readableState: { ended: boolean; endEmitted: boolean } };

/**
 * Whether this Node lets a Readable be ended in place (H1Body.takeWhole): the stream state's
 * `ended`/`endEmitted` are internal (setters over a bit field in Node 20 and 22). Checked
 * once; if a Node version changes them, whole bodies are streamed instead, never half-ended.
 */
const CAN_END_IN_PLACE = ((): boolean => {
  try {
    const probe = new Readable({ read() {} });
    const state = (probe as unknown as ReadableEnds)._readableState;
    state.ended = true;
    state.endEmitted = true;
    return probe.readableEnded && probe.readableLength === 0;
  } catch {
    return false;
  }
})();

/**
 * The response body: a plain Readable fed by the connection. Reading resumes the paused
 * socket; destroying it before its end closes the connection (the rest of the response is
 * not read).
 *
 * Until the response is delivered, the chunks of the read that carried the head are held
 * here rather than pushed. A body that came whole with its head (the common small response)
 * then stays held, and the listener takes it in one piece ({@link takeWhole}): no chunk goes
 * through the stream's buffer, and ending it costs no ticks (push, read to the end and the
 * auto-destroy queue three `process.nextTick`s per body, ~3 % of a sidecar's CPU, issue 11).
 * Anyone reading it as a stream gets the held chunks first.
 */
export class H1Body extends Readable {
  /** Every chunk has arrived (see core/whole-body.ts). */
  complete = false;
  readonly #ex: H1Exchange;
  readonly #conn: H1Connection;
  /** Chunks held until the body is streamed or taken whole; null once streaming. */
  #held: Buffer[] | null = [];

  constructor(ex: H1Exchange, conn: H1Connection) {
    super({ highWaterMark: 64 * 1024 });
    this.#ex = ex;
    this.#conn = conn;
  }

  /** @internal A chunk from the connection; false when the reader is behind (pause reading). */
  add(chunk: Buffer): boolean {
    if (this.#held !== null) {
      this.#held.push(chunk);
      return true;
    }
    return this.push(chunk);
  }

  /** @internal The last chunk arrived. */
  finish(): void {
    this.complete = true;
    if (this.#held === null) this.push(null);
  }

  /** @internal The response is delivered and more of its body is to come: stream from here. */
  stream(): void {
    const held = this.#held;
    if (held === null) return;
    this.#held = null;
    for (const chunk of held) this.push(chunk);
    if (this.complete) this.push(null);
  }

  /**
   * The whole body (null when empty), taken off the stream and ended as reading it to the end
   * would (its 'end' listeners run now); undefined when it is not held whole or is already read.
   */
  takeWhole(): Buffer | null | undefined {
    const held = this.#held;
    if (
      !CAN_END_IN_PLACE ||
      held === null ||
      !this.complete ||
      this.readableFlowing !== null ||
      this.destroyed
    )
      return undefined;
    this.#held = null;
    // What read() to the end leaves: ended, 'end' emitted (readableEnded), listeners told.
    const state = (this as unknown as ReadableEnds)._readableState;
    state.ended = true;
    state.endEmitted = true;
    this.emit('end');
    this.#ex.release();
    return held.length === 0 ? null : held.length === 1 ? held[0] : Buffer.concat(held);
  }

  override _read(): void {
    if (this.#held !== null) this.stream();
    else this.#conn.resumeBody(this);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#held = null;
    if (err === null && !this.readableEnded) err = abortedError();
    if (!this.complete) this.#conn.abortBody(this);
    this.#ex.release();
    callback(err);
  }
}
