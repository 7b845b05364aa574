/**
 * One downstream HTTP/1.1 connection, parsed by Node's own llhttp binding in strict mode (the
 * parser node:http's server uses, reading the socket's handle directly) without node:http's
 * IncomingMessage/ServerResponse machinery around it (issue 11: that machinery was ~100 µs of
 * the pair's ~300 per request). What node:http did for the listener is done here, on purpose
 * and tested (test/proxy/bad-input.test.ts):
 *
 * - parse errors (bad request line, header bytes, CL with TE, oversized headers, bad chunk
 *   sizes) are answered 400/431 naming the cause and the connection is closed;
 * - a request whose headers do not arrive within `headerTimeout` is answered 408 (slowloris),
 *   an idle keep-alive connection is closed after `idleTimeout`;
 * - pipelined requests are answered one at a time, in order; past a few queued, reading stops;
 * - request bodies are streams with backpressure (reading the socket stops while the
 *   consumer is behind); `Expect: 100-continue` is answered before the body is read;
 * - responses are framed here: Content-Length kept and enforced (a body longer or shorter
 *   than it announces ends the connection, never a second message), chunked for HTTP/1.1
 *   otherwise (with trailers), close-delimited for HTTP/1.0; no body after HEAD, 1xx, 204, 304;
 *   header names and values are checked before a byte is written;
 * - `Upgrade` and `CONNECT` stop parsing; the socket and the bytes after the head go to the
 *   server's upgrade handling.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import {
  HTTPParser,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  METHODS,
  startReads,
  stopReads,
  type ConsumableHandle,
  type NodeHttpParser,
  type ParseError,
} from '../transport/h1-parser.ts';
import { requestFields, type RequestFields } from '../core/headers.ts';

/** A request head as the parser gave it. */
export interface ParsedRequest {
  readonly major: number;
  readonly minor: number;
  /** Flat name/value list, as received. */
  readonly raw: string[];
  readonly method: string;
  readonly url: string;
  /** The parser's keep-alive verdict (version and `Connection`). */
  readonly keepAlive: boolean;
  /** The field lines read once. */
  readonly fields: RequestFields;
}

/** What a connection needs from its server. */
export interface H1ServerHost {
  readonly maxHeaderSize: number;
  readonly draining: boolean;
  /** A request to answer; the answer goes back through `conn.respond(...)`. */
  request(conn: H1ServerConnection, req: ParsedRequest, body: RequestBody | null): void;
  /** An `Upgrade`/`CONNECT` request: the socket is the handler's from here. */
  upgrade(conn: H1ServerConnection, req: ParsedRequest, socket: Socket, head: Buffer): void;
  /** A parse error or header timeout before any response started: answer and close. */
  refuse(socket: Socket, err: ParseError | 'header-timeout'): void;
  closed(conn: H1ServerConnection): void;
}

/** Pipelined requests held before reading stops. */
const MAX_QUEUED = 8;

const enum State {
  /** Waiting for the first byte of a request (idle timeout). */
  Idle,
  /** A request head is arriving (header timeout). */
  Head,
  /** Heads are complete; requests are being answered. */
  Busy,
}

/** A request body: a Readable fed by the parser; reading resumes the socket. */
export class RequestBody extends Readable {
  readonly #conn: H1ServerConnection;
  complete = false;

  constructor(conn: H1ServerConnection) {
    super({ highWaterMark: 64 * 1024 });
    this.#conn = conn;
  }

  override _read(): void {
    this.#conn.resumeReading();
  }

  /**
   * As node:http's IncomingMessage: an abort is an error only for a reader that listens for
   * one; with nobody listening (a layer that never read the body) it must not become an
   * uncaught exception that ends the process.
   */
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    callback(err !== null && this.listenerCount('error') > 0 ? err : null);
  }
}

interface Pending {
  req: ParsedRequest;
  body: RequestBody | null;
}

function abortedError(): Error {
  const err = new Error('the client closed the connection before the request body ended') as Error & {
    code: string;
  };
  err.code = 'ECONNRESET';
  return err;
}

export class H1ServerConnection {
  readonly socket: Socket;
  readonly #host: H1ServerHost;
  readonly #parser: NodeHttpParser;
  #handle: ConsumableHandle | null = null;
  #state = State.Head;
  /** performance.now() the current state began. */
  since = performance.now();
  #lines: string[] = [];
  #url = '';
  /** The body the parser is filling. */
  #parsing: RequestBody | null = null;
  readonly #queue: Pending[] = [];
  /** A request is being answered. */
  #busy = false;
  /** A request head completed in the read being parsed: answer once it is through. */
  #dispatch = false;
  #readPaused = false;
  /** The request being parsed is the last: `Connection: close` (or HTTP/1.0 without keep-alive). */
  #lastRequest = false;
  /** Reading has ended for good: the last request was read, an upgrade, or an error. */
  #readDone = false;
  #upgrade: ParsedRequest | null = null;
  #clientEnded = false;
  #closed = false;
  /** A response head went out for the request being answered (a later error can only close). */
  responding = false;
  /** The server's state for the request being answered, told when the connection closes. */
  exchange: { connectionClosed(): void } | null = null;

  constructor(host: H1ServerHost, socket: Socket) {
    this.#host = host;
    this.socket = socket;
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, socket, host.maxHeaderSize, HTTPParser.kLenientNone);
    parser[kOnMessageBegin] = this.#onMessageBegin;
    parser[kOnHeaders] = this.#onHeaderLines;
    parser[kOnHeadersComplete] = this.#onHeadersComplete;
    parser[kOnBody] = this.#onBody;
    parser[kOnMessageComplete] = this.#onMessageComplete;
    this.#parser = parser;
    socket.on('end', this.#onEnd);
    socket.on('error', noop);
    socket.on('close', this.#onClose);
  }

  /** Parse `head` (bytes read during detection), then read the socket. */
  start(head: Buffer): void {
    if (head.length > 0) this.#afterExecute(this.#parser.execute(head), head);
    if (this.#closed || this.#upgrade !== null || this.socket.destroyed) return;
    const handle = (this.socket as unknown as { _handle?: ConsumableHandle | null })._handle;
    if (handle?.isStreamBase === true && handle._consumed !== true) {
      handle._consumed = true;
      this.#handle = handle;
      this.#parser[kOnExecute] = this.#onExecute;
      this.#parser.consume(handle);
    } else this.socket.on('data', this.#onData);
    this.socket.resume();
    if (this.#readPaused) {
      // Paused while the head was parsed: pause the handle now that it is ours.
      this.#readPaused = false;
      this.#pauseReading();
    }
  }

  get idle(): boolean {
    return this.#state === State.Idle;
  }

  get headPending(): boolean {
    return this.#state === State.Head;
  }

  // ---- parsing ------------------------------------------------------------------------

  readonly #onData = (chunk: Buffer): void => {
    if (this.#readDone) return;
    this.#afterExecute(this.#parser.execute(chunk), chunk);
  };

  readonly #onExecute = (ret: number | ParseError): void => {
    this.#afterExecute(ret, undefined);
  };

  #afterExecute(ret: number | ParseError, chunk: Buffer | undefined): void {
    if (typeof ret !== 'number') {
      this.#fail(ret);
      return;
    }
    if (this.#dispatch) {
      this.#dispatch = false;
      if (!this.#busy && !this.#closed) this.#next();
    }
    const up = this.#upgrade;
    if (up === null) return;
    // The parser stopped at the end of the upgrade's head: the rest is the new protocol's.
    let rest: Buffer;
    if (chunk !== undefined) rest = chunk.subarray(ret);
    else {
      const d = (this.#parser as unknown as { getCurrentBuffer(): Buffer }).getCurrentBuffer();
      rest = d.subarray(ret);
    }
    this.#detachParser();
    // As node:http: the new protocol's bytes stay in the socket until its handler reads.
    (this.socket as { readableFlowing: boolean | null }).readableFlowing = null;
    if (this.#busy || this.#queue.length > 0) {
      // An upgrade pipelined behind another request: not supported, nothing sent yet for it.
      this.socket.destroy();
      return;
    }
    this.#state = State.Busy;
    this.#host.upgrade(this, up, this.socket, rest);
  }

  readonly #onMessageBegin = (): void => {
    if (this.#state === State.Idle) {
      this.#state = State.Head;
      this.since = performance.now();
    }
  };

  readonly #onHeaderLines = (lines: string[], url: string): void => {
    for (let i = 0; i < lines.length; i++) this.#lines.push(lines[i]);
    this.#url += url;
  };

  readonly #onHeadersComplete = (
    major: number,
    minor: number,
    lines: string[] | undefined,
    method: number,
    url: string | undefined,
    _status: unknown,
    _reason: unknown,
    upgrade: boolean,
    keepAlive: boolean,
  ): number => {
    if (lines === undefined) {
      lines = this.#lines;
      this.#lines = [];
    }
    if (url === undefined) {
      url = this.#url;
      this.#url = '';
    }
    const fields = requestFields(lines);
    const req: ParsedRequest = {
      major,
      minor,
      raw: lines,
      method: METHODS[method] ?? '',
      url,
      keepAlive,
      fields,
    };
    this.#state = State.Busy;
    if (upgrade) {
      this.#upgrade = req;
      this.#readDone = true;
      return 0;
    }
    const cl = fields.contentLength;
    const body = fields.chunked || (cl !== undefined && Number(cl) > 0) ? new RequestBody(this) : null;
    this.#parsing = body;
    if (!keepAlive) this.#lastRequest = true;
    this.#queue.push({ req, body });
    if (this.#queue.length >= MAX_QUEUED) this.#pauseReading();
    // Answered once the parser is through this read (#afterExecute): Node runs queued promise
    // callbacks between a handle-reading parser's callbacks, so a request dispatched here would
    // reach the hop before a body that came in the same read, and be streamed, not sent whole.
    this.#dispatch = true;
    return 0;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const body = this.#parsing;
    if (body === null || body.destroyed) return;
    if (!body.push(chunk)) this.#pauseReading();
  };

  readonly #onMessageComplete = (): void => {
    const body = this.#parsing;
    this.#parsing = null;
    if (body !== null && !body.destroyed) {
      body.complete = true;
      body.push(null);
    }
    // `Connection: close`: whatever follows is not read.
    if (this.#lastRequest && this.#upgrade === null) {
      this.#pauseReading();
      this.#readDone = true;
    } else if (body !== null) {
      // Reading may have stopped for this body's backpressure, and an ended body never asks
      // for more (its reader no longer calls _read): resume here, or the keep-alive request
      // after it is never read (the pipelining bound still applies, see resumeReading).
      this.resumeReading();
    }
  };

  #fail(err: ParseError): void {
    this.#readDone = true;
    this.#detachParser();
    const body = this.#parsing;
    this.#parsing = null;
    body?.destroy(
      Object.assign(new Error(`bad request body: ${err.reason ?? err.message}`), { code: err.code }),
    );
    if (this.responding || this.socket.destroyed) this.socket.destroy();
    else this.#host.refuse(this.socket, err);
  }

  /** Header timeout (the server's sweep): answer 408 unless a response is on its way. */
  headerTimeout(): void {
    this.#readDone = true;
    this.#detachParser();
    if (this.#busy) this.socket.destroy();
    else this.#host.refuse(this.socket, 'header-timeout');
  }

  // ---- answering ----------------------------------------------------------------------

  #next(): void {
    if (this.#queue.length > 0 && this.socket.writableNeedDrain) {
      // A client that pipelines and does not read its answers: take no more of its requests
      // until it does (the queue then fills and reading stops), as node:http's server.
      this.socket.once('drain', this.#onDrainNext);
      return;
    }
    const p = this.#queue.shift();
    if (p === undefined) {
      this.#busy = false;
      if (this.#lastRequest || this.#readDone || this.#clientEnded) {
        this.#endSoon();
        return;
      }
      if (this.#state === State.Busy) {
        this.#state = State.Idle;
        this.since = performance.now();
      }
      if (this.#host.draining) this.#endSoon();
      return;
    }
    this.#busy = true;
    this.responding = false;
    if (this.#queue.length < MAX_QUEUED && this.#parsing === null) this.resumeReading();
    this.#host.request(this, p.req, p.body);
  }

  readonly #onDrainNext = (): void => {
    if (!this.#closed) this.#next();
  };

  /** The response to the current request was written whole: keep the connection or end it. */
  finished(keepAlive: boolean): void {
    this.responding = false;
    if (!keepAlive) {
      this.#readDone = true;
      this.#queue.length = 0;
      this.#detachParser();
      this.#endSoon();
      this.#busy = false;
      return;
    }
    this.#next();
  }

  /** Drain: end the connection now when nothing is being answered. */
  endIfIdle(): void {
    if (!this.#busy && this.#queue.length === 0) this.#endSoon();
  }

  /**
   * End our side and close once the answer is flushed (node:http's destroySoon): a client that
   * never ends its side does not keep the socket.
   */
  #endSoon(): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    if (socket.writableFinished) socket.destroy();
    else {
      socket.once('finish', () => socket.destroy());
      socket.end();
    }
  }

  // ---- reading ------------------------------------------------------------------------

  /**
   * Stop reading the socket. A consumed handle is stopped directly: its reads go to the
   * parser, never into the socket's buffer whose fill would stop them.
   */
  #pauseReading(): void {
    if (this.#readPaused) return;
    this.#readPaused = true;
    if (this.#handle !== null) stopReads(this.#handle);
    else this.socket.pause();
  }

  /** @internal A request body's reader wants more, or a queued request was taken. */
  resumeReading(): void {
    if (!this.#readPaused || this.#readDone || this.#closed) return;
    if (this.#queue.length >= MAX_QUEUED) return;
    this.#readPaused = false;
    if (this.#handle !== null) {
      if (!this.socket.destroyed) startReads(this.#handle);
    } else this.socket.resume();
  }

  #detachParser(): void {
    if (this.#handle !== null) {
      this.#parser.unconsume();
      this.#handle._consumed = false;
      this.#handle = null;
    }
    this.socket.off('data', this.#onData);
  }

  readonly #onEnd = (): void => {
    // The client ended its side: a body cut short fails; answers still go out, then we end.
    this.#clientEnded = true;
    const body = this.#parsing;
    if (body !== null) {
      this.#parsing = null;
      body.destroy(abortedError());
    }
    if (!this.#busy && this.#queue.length === 0 && this.#upgrade === null) this.socket.end();
  };

  readonly #onClose = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#upgrade === null) {
      this.#detachParser();
      this.#parser.close();
    }
    const body = this.#parsing;
    this.#parsing = null;
    if (body !== null && !body.complete) body.destroy(abortedError());
    for (const p of this.#queue) if (p.body !== null && !p.body.complete) p.body.destroy(abortedError());
    this.#queue.length = 0;
    const ex = this.exchange;
    this.exchange = null;
    ex?.connectionClosed();
    this.#host.closed(this);
  };
}

function noop(): void {}
