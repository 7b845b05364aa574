/**
 * One keep-alive HTTP/1.1 connection of the hop: a socket (TCP, or TLS for mTLS), Node's
 * strict parser, and at most one exchange at a time (no pipelining). The request head goes
 * out in one write; a body streams after it with backpressure, framed by its declared length
 * or chunked; the response feeds an {@link H1Body}. A connection is handed back to its pool
 * only after a complete exchange that both sides agreed to keep alive.
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import type { HeaderMap } from '../core/dispatch.ts';
import { takeWhole } from '../core/whole-body.ts';
import type { H1Body, H1Exchange } from './h1-exchange.ts';
import {
  HTTPParser,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageComplete,
  PARSER_RESOURCE,
  startReads,
  stopReads,
  type ConsumableHandle,
  type NodeHttpParser,
  type ParseError,
} from './h1-parser.ts';
import { bodyFraming, requestHead } from './h1-request-head.ts';
import type { HopSecurity } from './hop-security.ts';

export interface H1ConnectionOptions {
  connectTimeout: number;
  /** Stream idle time: the most a response body may stall between chunks while read. */
  bodyTimeout: number;
  security: HopSecurity;
}

/** What a connection tells its pool. */
export interface ConnectionPool {
  /** The connection finished an exchange and may carry another. */
  onIdle(conn: H1Connection): void;
  /** The connection closed (or will: it must not be used again). */
  onClosed(conn: H1Connection): void;
}

function coded(message: string, code: string): Error {
  const err = new Error(message) as Error & { code: string };
  err.code = code;
  return err;
}

/**
 * Add a flat name/value list (header or trailer lines, as the parser gives them) to `into`,
 * names lower-cased, repeated fields as lists; returns the names that were not lower-case.
 */
function addFieldLines(into: HeaderMap, lines: readonly string[]): Map<string, string> | undefined {
  let names: Map<string, string> | undefined;
  for (let i = 0; i < lines.length; i += 2) {
    const raw = lines[i];
    const name = raw.toLowerCase();
    if (name !== raw) (names ??= new Map()).set(name, raw);
    const value = lines[i + 1];
    const prev = into[name];
    if (prev === undefined) into[name] = value;
    else if (typeof prev === 'string') into[name] = [prev, value];
    else prev.push(value);
  }
  return names;
}

/** The last `keep-alive` value read and its meaning: an origin sends the same one every time. */
let lastHint = '';
let lastHintMs = 0;

/** `keep-alive: timeout=N` of a response, in ms, or 0. */
function keepAliveHint(value: string | string[]): number {
  const v = Array.isArray(value) ? value.join(',') : value;
  if (v === lastHint) return lastHintMs;
  const m = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(v);
  lastHint = v;
  lastHintMs = m === null ? 0 : Number(m[1]) * 1000;
  return lastHintMs;
}

export class H1Connection {
  readonly socket: net.Socket;
  readonly #pool: ConnectionPool;
  readonly #opts: H1ConnectionOptions;
  readonly #parser: NodeHttpParser;
  #ex: H1Exchange | null = null;
  #body: H1Body | null = null;
  /** Exchanges completed on this connection (a failure on a reused one may be the keep-alive race). */
  #served = 0;
  /** Bytes of a response arrived for the current exchange. */
  #gotBytes = false;
  #requestSent = false;
  #responseDone = false;
  #keepAlive = true;
  #isHead = false;
  /** Header (or trailer) lines flushed by the parser before their section ended. */
  #lines: string[] = [];
  #headersDone = false;
  #error: Error | null = null;
  #closed = false;
  /** The parser reads the socket's handle directly. */
  #consumed = false;
  #handle: ConsumableHandle | null = null;
  /** Reading stopped for backpressure. */
  #readPaused = false;
  #connectTimer: NodeJS.Timeout | null = null;
  #bodyTimerOn = false;
  /** Request body being written, its framing (-1 chunked) and the bytes still declared. */
  #reqBody: Readable | null = null;
  /** The request head, until the body's first bytes go out with it. */
  #pendingHead: string | null = null;
  #chunked = false;
  #remaining = 0;
  /** Idle keep-alive limit the origin announced (`keep-alive: timeout=N`), 0 if none. */
  idleHint = 0;
  /** performance.now() when the connection last became idle. */
  idleSince = 0;

  constructor(pool: ConnectionPool, host: string, port: number, opts: H1ConnectionOptions) {
    this.#pool = pool;
    this.#opts = opts;
    const socketOpts = { host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 };
    const sec = opts.security;
    if (sec.scheme === 'https') {
      const s = tls.connect({
        ...socketOpts,
        servername: net.isIP(host) ? undefined : host,
        ALPNProtocols: ['http/1.1'],
        ...sec.connectOptions(host),
      });
      s.once('secureConnect', this.#onConnected);
      this.socket = s;
    } else {
      this.socket = net.connect({ ...socketOpts, ...sec.connectOptions(host) } as net.NetConnectOpts);
      this.socket.once('connect', this.#onConnected);
    }
    if (opts.connectTimeout > 0) this.#connectTimer = setTimeout(this.#onConnectTimeout, opts.connectTimeout);
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, PARSER_RESOURCE, 0, HTTPParser.kLenientNone);
    parser[kOnHeaders] = this.#onHeaderLines;
    parser[kOnHeadersComplete] = this.#onHeadersComplete;
    parser[kOnBody] = this.#onBody;
    parser[kOnMessageComplete] = this.#onMessageComplete;
    this.#parser = parser;
    // The parser reads the socket's handle itself, as node:http's server does: no JavaScript
    // Buffer or 'data' event per read, one reused read buffer (EOF and errors still reach the
    // socket). Pausing the socket stops the handle's reads.
    const handle = (this.socket as unknown as { _handle?: ConsumableHandle | null })._handle;
    if (handle?.isStreamBase === true && handle._consumed !== true) {
      handle._consumed = true;
      this.#handle = handle;
      parser[kOnExecute] = this.#onExecute;
      parser.consume(handle);
      this.#consumed = true;
    } else this.socket.on('data', this.#onData);
    this.socket.on('end', this.#onEnd);
    this.socket.on('error', this.#onError);
    this.socket.on('close', this.#onClose);
    this.socket.on('drain', this.#onDrain);
    this.socket.on('timeout', this.#onBodyTimeout);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get busy(): boolean {
    return this.#ex !== null;
  }

  /** Send `ex` on this connection. */
  start(ex: H1Exchange): void {
    const req = ex.req;
    let head: string;
    let framing: number;
    const hasBody = req.body !== null;
    try {
      framing = bodyFraming(req.headers, hasBody);
      head = requestHead(
        req.method,
        req.path,
        req.authority,
        req.headers,
        req.ctx.requestNames,
        framing,
        hasBody,
      );
    } catch (err) {
      ex.fail(err as Error, false);
      if (!this.#closed) this.#pool.onIdle(this); // nothing was written: still clean
      return;
    }
    this.#ex = ex;
    this.#body = null;
    this.#gotBytes = false;
    this.#responseDone = false;
    this.#headersDone = false;
    this.#keepAlive = true;
    this.#isHead = req.method === 'HEAD';
    this.idleHint = 0;
    ex.attach(this);
    if (req.body === null) {
      this.socket.write(head, 'latin1');
      this.#requestSent = true;
      return;
    }
    // A body that came whole with its head (a small upload): one write with the head.
    const whole = takeWhole(req.body);
    if (whole !== undefined) {
      const n = whole === null ? 0 : whole.length;
      if (framing >= 0 && n !== framing) {
        this.#ex = null;
        ex.fail(
          coded(
            `request body of ${n} bytes, its content-length says ${framing}`,
            'ERR_CONTENT_LENGTH_MISMATCH',
          ),
          false,
        );
        this.#pool.onIdle(this); // nothing was written: still clean
        return;
      }
      const socket = this.socket;
      if (framing === -1)
        socket.write(
          n === 0
            ? `${head}0\r\n\r\n`
            : Buffer.concat([
                Buffer.from(`${head}${n.toString(16)}\r\n`, 'latin1'),
                whole!,
                Buffer.from('\r\n0\r\n\r\n', 'latin1'),
              ]),
        );
      else if (n === 0) socket.write(head, 'latin1');
      else {
        const buf = Buffer.allocUnsafe(head.length + n);
        buf.write(head, 0, 'latin1');
        whole!.copy(buf, head.length);
        socket.write(buf);
      }
      this.#requestSent = true;
      return;
    }
    // The head waits for the body's first bytes (or its end): a body that fails before it has
    // any (a malformed chunk from the client) never reaches the origin as a request.
    this.#pendingHead = head;
    this.#requestSent = false;
    this.#chunked = framing === -1;
    this.#remaining = framing;
    const body = req.body;
    this.#reqBody = body;
    body.on('data', this.#onReqData);
    body.on('end', this.#onReqEnd);
    body.on('error', this.#onReqError);
    // Resume: a body paused by an earlier consumer (a retried request's replay) flows now.
    body.resume();
  }

  /** The exchange's signal aborted it: detach it and close the connection. */
  abort(ex: H1Exchange, reason: Error): void {
    if (this.#ex !== ex) return;
    this.#detach();
    ex.fail(reason, false);
    this.socket.destroy();
  }

  /** A response body was destroyed before it ended: the rest of the response is not read. */
  abortBody(body: H1Body): void {
    if (this.#body !== body || this.#responseDone) return;
    this.#detach();
    this.socket.destroy();
  }

  /** A response body wants more: read again if its backpressure had paused the socket. */
  resumeBody(body: H1Body): void {
    if (this.#body !== body || this.#responseDone || !this.#readPaused) return;
    this.#resumeReading();
    if (this.#opts.bodyTimeout > 0) this.#setBodyTimer(true);
  }

  /** Close an idle connection (pool shrinking, target gone, idle limit). */
  close(): void {
    if (this.#ex === null) this.socket.destroy();
  }

  destroy(err?: Error): void {
    if (err !== undefined) this.#error ??= err;
    this.socket.destroy();
  }

  // ---- request body -------------------------------------------------------------------

  readonly #onReqData = (chunk: Buffer | string): void => {
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (n === 0) return;
    const socket = this.socket;
    let ok: boolean;
    if (!this.#chunked) {
      this.#remaining -= n;
      if (this.#remaining < 0) {
        this.#failRequestBody(
          coded('request body longer than its content-length', 'ERR_CONTENT_LENGTH_MISMATCH'),
        );
        return;
      }
    }
    socket.cork();
    this.#writePendingHead();
    if (this.#chunked) {
      socket.write(`${n.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
    } else ok = socket.write(chunk);
    socket.uncork();
    if (!ok) this.#reqBody?.pause();
  };

  readonly #onReqEnd = (): void => {
    if (!this.#chunked && this.#remaining !== 0) {
      this.#failRequestBody(
        coded('request body shorter than its content-length', 'ERR_CONTENT_LENGTH_MISMATCH'),
      );
      return;
    }
    this.#writePendingHead();
    if (this.#chunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.#stopRequestBody();
    this.#requestSent = true;
    if (this.#responseDone) this.#finish(); // the response ended before the upload did
  };

  readonly #onReqError = (err: Error): void => {
    this.#failRequestBody(err);
  };

  readonly #onDrain = (): void => {
    this.#reqBody?.resume();
  };

  #writePendingHead(): void {
    if (this.#pendingHead === null) return;
    this.socket.write(this.#pendingHead, 'latin1');
    this.#pendingHead = null;
  }

  #stopRequestBody(): void {
    this.#pendingHead = null;
    const body = this.#reqBody;
    if (body === null) return;
    this.#reqBody = null;
    body.off('data', this.#onReqData);
    body.off('end', this.#onReqEnd);
    body.off('error', this.#onReqError);
  }

  #failRequestBody(err: Error): void {
    this.#stopRequestBody();
    const ex = this.#ex;
    this.#detach();
    this.socket.destroy();
    ex?.fail(err, false);
  }

  // ---- response -----------------------------------------------------------------------

  /** Socket reads in JavaScript (when the parser could not take the socket's handle). */
  readonly #onData = (chunk: Buffer): void => {
    if (this.#ex === null) {
      // Bytes nobody asked for: the connection cannot be trusted with another request.
      this.socket.destroy();
      return;
    }
    this.#onExecute(this.#parser.execute(chunk));
  };

  /** After the parser ran over one read (`ret`: bytes parsed, or the parse error). */
  readonly #onExecute = (ret: number | ParseError): void => {
    if (this.#ex === null) {
      if (!this.socket.destroyed) this.socket.destroy(); // bytes nobody asked for
      return;
    }
    this.#gotBytes = true;
    if (typeof ret !== 'number') {
      const err = ret as ParseError;
      this.#error ??= coded(`bad response: ${err.reason ?? err.message}`, err.code ?? 'HPE_INVALID');
    }
    // The head is delivered now that the read is parsed (see H1Exchange.respond): a response
    // that came whole goes on with its whole body.
    if (this.#headersDone && (this.#error === null || this.#responseDone)) {
      this.#ex.deliver();
      // More of the body is to come: it streams from here.
      if (!this.#responseDone) this.#body?.stream();
    }
    if (this.#responseDone) {
      // A complete response stands even when garbage followed it; the connection does not.
      if (this.#error !== null) this.#keepAlive = false;
      this.#finish();
    }
    if (this.#error !== null) this.socket.destroy();
    else if (this.#responseDone) return;
    else if (this.#headersDone && this.#opts.bodyTimeout > 0 && !this.#bodyTimerOn && !this.#readPaused)
      this.#setBodyTimer(true);
  };

  readonly #onHeaderLines = (lines: string[]): void => {
    for (let i = 0; i < lines.length; i++) this.#lines.push(lines[i]);
  };

  readonly #onHeadersComplete = (
    _major: number,
    _minor: number,
    lines: string[] | undefined,
    _method: unknown,
    _url: unknown,
    status: number,
    _reason: unknown,
    upgrade: boolean,
    keepAlive: boolean,
  ): number => {
    if (lines === undefined) {
      lines = this.#lines;
      this.#lines = [];
    }
    const ex = this.#ex;
    if (ex === null || this.#headersDone) {
      this.#error = coded('the upstream sent a response nobody asked for', 'HPE_UNSOLICITED_RESPONSE');
      return 2; // stop parsing
    }
    if (upgrade || status === 101) {
      this.#error = coded(
        `the upstream switched protocols (${status}) on a plain request`,
        'HPE_UNEXPECTED_UPGRADE',
      );
      return 2;
    }
    if (status < 200) return 1; // informational: the final response follows
    this.#headersDone = true;
    this.#keepAlive = keepAlive;
    const headers: HeaderMap = {};
    ex.req.ctx.responseNames = addFieldLines(headers, lines);
    const hint = headers['keep-alive'];
    if (hint !== undefined) this.idleHint = keepAliveHint(hint);
    this.#body = ex.respond(status, headers);
    return this.#isHead ? 1 : 0;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const body = this.#body;
    if (body === null) return;
    if (!body.add(chunk)) {
      this.#pauseReading();
      if (this.#bodyTimerOn) this.#setBodyTimer(false); // waiting on our reader is not a stall
    }
  };

  readonly #onMessageComplete = (): void => {
    const body = this.#body;
    if (body === null) return; // an informational response ended
    this.#responseDone = true;
    const lines = this.#lines;
    if (lines.length > 0) {
      this.#lines = [];
      addFieldLines(this.#ex!.trailers, lines);
    }
    body.finish();
  };

  /** The response ended: hand the connection back if both sides keep it alive, else close it. */
  #finish(): void {
    if (!this.#requestSent) return; // still uploading: finished when the upload ends
    const ex = this.#ex!;
    this.#detach();
    ex.finished();
    this.#served++;
    if (this.#bodyTimerOn) this.#setBodyTimer(false);
    if (!this.#keepAlive || this.#closed || this.socket.destroyed) {
      this.socket.destroy();
      return;
    }
    this.#resumeReading();
    this.#pool.onIdle(this);
  }

  /**
   * Stop reading the socket (our reader is behind). A consumed handle is stopped directly:
   * its reads go to the parser, never into the socket's buffer whose fill would stop them.
   */
  #pauseReading(): void {
    if (this.#readPaused) return;
    this.#readPaused = true;
    if (!this.#consumed) {
      this.socket.pause();
      return;
    }
    if (this.#handle !== null) stopReads(this.#handle);
  }

  #resumeReading(): void {
    if (!this.#readPaused) return;
    this.#readPaused = false;
    if (!this.#consumed) {
      this.socket.resume();
      return;
    }
    if (this.#handle !== null && !this.socket.destroyed) startReads(this.#handle);
  }

  #detach(): void {
    this.#stopRequestBody();
    this.#ex = null;
    this.#body = null;
  }

  #setBodyTimer(on: boolean): void {
    this.#bodyTimerOn = on;
    this.socket.setTimeout(on ? this.#opts.bodyTimeout : 0);
  }

  readonly #onBodyTimeout = (): void => {
    if (!this.#bodyTimerOn || this.#ex === null) return;
    this.#error ??= coded(
      `no response bytes for ${this.#opts.bodyTimeout} ms (stream idle timeout)`,
      'HEXMESH_STREAM_IDLE_TIMEOUT',
    );
    this.socket.destroy();
  };

  // ---- connection ---------------------------------------------------------------------

  readonly #onConnected = (): void => {
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
  };

  readonly #onConnectTimeout = (): void => {
    this.#connectTimer = null;
    this.#error ??= coded(`connect timeout after ${this.#opts.connectTimeout} ms`, 'ETIMEDOUT');
    this.socket.destroy();
  };

  readonly #onEnd = (): void => {
    // The origin closed its side: a body read until close ends here.
    if (this.#ex !== null && this.#headersDone && !this.#responseDone) {
      const ret = this.#parser.finish();
      if (ret instanceof Error)
        this.#error ??= coded(`bad response: ${ret.message}`, 'HPE_INVALID_EOF_STATE');
      else if (this.#responseDone) this.#finish();
    }
    this.#keepAlive = false;
    this.#pool.onClosed(this);
  };

  readonly #onError = (err: Error): void => {
    this.#error ??= err;
  };

  readonly #onClose = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    if (this.#consumed) this.#parser.unconsume();
    this.#parser.close();
    const ex = this.#ex;
    if (ex !== null && this.#responseDone) {
      // The response was whole; only the upload after it was cut.
      this.#detach();
      ex.deliver();
      ex.finished();
    } else if (ex !== null) {
      // Closed or reset on a reused connection before any response byte: the keep-alive race.
      const code = (this.#error as { code?: string } | null)?.code;
      const stale =
        this.#served > 0 &&
        !this.#gotBytes &&
        (this.#error === null || code === 'ECONNRESET' || code === 'EPIPE');
      const err = this.#error ?? coded('the upstream closed the connection', 'ECONNRESET');
      this.#detach();
      ex.fail(err, stale);
    }
    this.#pool.onClosed(this);
  };
}
