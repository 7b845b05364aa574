/**
 * HTTP/1.1 downstream adapter: Node's HTTP parser (strict: bad request lines, invalid
 * header bytes, Content-Length with Transfer-Encoding and oversized headers are refused
 * before anything reaches a layer) turned into MeshRequests for one Service. The parser runs
 * on each connection's socket handle (h1-server-connection.ts); this file turns its requests
 * into MeshRequests and writes the responses.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex, Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { HeaderMap, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { Cancel, NEVER, type CancelSignal } from '../core/cancel.ts';
import { reclaimWhileStreaming } from '../core/buffer-reclaim.ts';
import { takeWhole } from '../core/whole-body.ts';
import { errorResponse, ERROR_HEADER } from '../core/error-response.ts';
import { endToEndHeaders } from '../core/headers.ts';
import { BAD_VALUE, TOKEN } from '../transport/h1-request-head.ts';
import type { ParseError } from '../transport/h1-parser.ts';
import {
  H1ServerConnection,
  type H1ServerHost,
  type ParsedRequest,
  type RequestBody,
} from './h1-server-connection.ts';
import { isGrpc, newContext, type ListenerIdentity } from './request-context.ts';

export interface Http1Options {
  maxHeaderSize: number;
  headerTimeout: number;
  idleTimeout: number;
}

/**
 * Handles `Upgrade` requests (WebSocket and any other protocol); the socket is raw after the
 * 101. Unlike other requests, `req.headers.upgrade` is kept: the client's token, unchanged.
 */
export type UpgradeHandler = (req: MeshRequest, socket: Duplex, head: Buffer) => void;

export class Http1Server implements H1ServerHost {
  readonly #id: ListenerIdentity;
  readonly #opts: Http1Options;
  readonly #onUpgrade: UpgradeHandler | undefined;
  /** Most request header fields: a peer sidecar's requests carry the few it adds on top. */
  readonly #maxHeaders: number;
  /** `keep-alive: timeout=N` on responses, so clients close idle connections before we do. */
  readonly #keepAliveHint: string;
  readonly #connections = new Set<H1ServerConnection>();
  #sweep: NodeJS.Timeout | null = null;
  #service: Service;
  draining = false;
  inflight = 0;

  constructor(id: ListenerIdentity, service: Service, opts: Http1Options, onUpgrade?: UpgradeHandler) {
    this.#id = id;
    this.#opts = opts;
    this.#onUpgrade = onUpgrade;
    this.#maxHeaders = MAX_REQUEST_HEADERS + (id.direction === 'inbound' ? MESH_ADDED_HEADERS : 0);
    this.#keepAliveHint = `keep-alive: timeout=${Math.max(1, Math.floor(opts.idleTimeout / 1000))}\r\n`;
    this.#service = service;
  }

  get maxHeaderSize(): number {
    return this.#opts.maxHeaderSize;
  }

  /** Swap the service when config changes; in-flight requests keep the old chain. */
  setService(service: Service): void {
    this.#service = service;
  }

  /** Give the server a socket whose first bytes (`head`) were read during detection. */
  accept(socket: Socket, head: Buffer): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    const conn = new H1ServerConnection(this, socket);
    this.#connections.add(conn);
    // One sweep per server for header and idle timeouts, not a timer per connection.
    this.#sweep ??= setInterval(this.#onSweep, Math.min(1000, this.#opts.headerTimeout)).unref();
    conn.start(head);
  }

  readonly #onSweep = (): void => {
    const now = performance.now();
    for (const c of this.#connections) {
      if (c.headPending && now - c.since > this.#opts.headerTimeout) c.headerTimeout();
      else if (c.idle && now - c.since > this.#opts.idleTimeout) c.socket.destroy();
    }
  };

  /** @internal H1ServerHost */
  closed(conn: H1ServerConnection): void {
    this.#connections.delete(conn);
    if (this.#connections.size === 0 && this.#sweep !== null) {
      clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }

  /** @internal H1ServerHost: parse errors and header timeouts, before any response started. */
  refuse(socket: Socket, err: ParseError | 'header-timeout'): void {
    if (err === 'header-timeout')
      refuse(
        socket,
        408,
        `request headers not received within ${this.#opts.headerTimeout} ms`,
        'header-timeout',
      );
    else onClientError(err, socket);
  }

  /** @internal H1ServerHost */
  upgrade(_conn: H1ServerConnection, req: ParsedRequest, socket: Socket, head: Buffer): void {
    // CONNECT tunnels are not offered (opaque TCP uses per-upstream ports).
    if (req.method === 'CONNECT')
      return refuse(socket, 405, 'CONNECT is not supported (use a per-upstream local port for TCP)');
    if (this.#onUpgrade === undefined)
      return refuse(socket, 501, 'protocol upgrades are not supported here', 'upgrade-unsupported');
    try {
      const mreq = this.#toMesh(req, socket, NEVER, null);
      mreq.headers.upgrade = req.fields.upgrade;
      this.#onUpgrade(mreq, socket, head);
    } catch {
      socket.destroy();
    }
  }

  #toMesh(req: ParsedRequest, socket: Socket, signal: CancelSignal, body: Readable | null): MeshRequest {
    const fields = req.fields;
    let authority = fields.host ?? '';
    let path = req.url;
    // Absolute-form request target (the app uses us as its HTTP proxy: HTTP_PROXY=...).
    if (path.charCodeAt(0) !== 47 /* '/' */) {
      const start = path.startsWith('http://') ? 7 : path.startsWith('https://') ? 8 : 0;
      if (start > 0) {
        const slash = path.indexOf('/', start);
        authority = slash < 0 ? path.slice(start) : path.slice(start, slash);
        path = slash < 0 ? '/' : path.slice(slash);
      }
    }
    const headers = fields.headers;
    // Request trailers are not relayed, so do not announce them upstream.
    if (headers.trailer !== undefined) delete headers.trailer;
    const ctx = newContext(this.#id, socket.remoteAddress ?? '', signal, socket);
    ctx.requestNames = fields.names;
    return {
      method: req.method,
      authority,
      path,
      headers,
      body,
      protocol: 'http1',
      grpc: isGrpc(headers['content-type']),
      ctx,
    };
  }

  /** @internal H1ServerHost: answer one request; the connection reads no other meanwhile. */
  request(conn: H1ServerConnection, req: ParsedRequest, body: RequestBody | null): void {
    const ex = new Exchange(this, conn, req);
    ex.upload = body;
    conn.exchange = ex;
    this.inflight++;
    let mreq: MeshRequest;
    let answer: Promise<MeshResponse>;
    try {
      mreq = this.#toMesh(req, conn.socket, ex.cancel, body);
      const bad = malformed(req, mreq.path, this.#maxHeaders, conn.socket);
      if (bad) {
        // The parser accepted it, but it must not reach a layer (RFC 9112 §3.2, §3.2.4).
        const [status, reason] = typeof bad === 'string' ? [400, bad] : bad;
        const err = new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `bad request: ${reason}`, {
          context: { status },
        });
        ex.keepAlive = false;
        body?.destroy();
        ex.write(errorResponse(err, mreq), undefined);
        return;
      }
      // `Expect: 100-continue` (the only expectation malformed() lets through): the client
      // waits for this before it sends the body.
      if (body !== null && req.minor >= 1 && req.fields.expect !== undefined)
        conn.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
      answer = this.#service(mreq);
    } catch {
      // A layer that throws instead of rejecting fails this connection, never the process.
      body?.destroy();
      conn.socket.destroy();
      ex.end(false);
      return;
    }
    answer.then(
      (res) => ex.write(res, mreq.ctx.responseNames),
      (err: unknown) => ex.write(errorResponse(err, mreq), mreq.ctx.responseNames),
    );
  }

  /** @internal The start of a response's head: status line and the connection's own fields. */
  connectionFields(keepAlive: boolean, http10: boolean): string {
    if (!keepAlive) return 'connection: close\r\n';
    return http10 ? `connection: keep-alive\r\n${this.#keepAliveHint}` : this.#keepAliveHint;
  }

  /** Stop keep-alive on every connection; idle ones close now. */
  drain(): void {
    this.draining = true;
    for (const c of this.#connections) c.endIfIdle();
  }

  close(): void {
    this.draining = true;
    for (const c of this.#connections) c.socket.destroy();
  }
}

const kExchange = Symbol('hexmesh.http1.exchange');
type TrackedBody = Readable & { [kExchange]?: Exchange };

/**
 * One request/response on a connection: the cancellation of its context (aborted when the
 * connection goes away before the response is written, cleared once it is), the response
 * being written, and the in-flight count. The stream listeners are module functions that
 * find it through the stream, so a request allocates no closures for them.
 */
class Exchange {
  readonly cancel = new Cancel();
  keepAlive: boolean;
  body: TrackedBody | null = null;
  /** The response being relayed; its `trailers` are filled by the producer before the body ends. */
  response: MeshResponse | undefined = undefined;
  /** Body framing: -2 none, -1 chunked, -3 until close, else the bytes still owed. */
  remaining = -2;
  #counted = true;
  #done = false;
  /** The request's body, or null. */
  upload: RequestBody | null = null;

  constructor(
    readonly server: Http1Server,
    readonly conn: H1ServerConnection,
    readonly req: ParsedRequest,
  ) {
    this.keepAlive = req.keepAlive;
  }

  get socket(): Socket {
    return this.conn.socket;
  }

  /**
   * Write `m` as the response; `names` spells its header names as the upstream did. Whatever
   * fails here fails this connection, never the process.
   */
  write(m: MeshResponse, names: ReadonlyMap<string, string> | undefined): void {
    try {
      this.#write(m, names);
    } catch {
      m.body?.destroy();
      this.socket.destroy();
      this.end(false);
    }
  }

  #write(m: MeshResponse, names: ReadonlyMap<string, string> | undefined): void {
    const socket = this.socket;
    const body = m.body as TrackedBody | null;
    if (this.#done || socket.destroyed || !socket.writable) {
      body?.destroy();
      this.end(false);
      return;
    }
    const head = this.#head(m, names, body);
    if (head === undefined) {
      // An invalid status or header from upstream: drop the connection, never the process.
      body?.destroy();
      socket.destroy();
      this.end(false);
      return;
    }
    this.conn.responding = true;
    if (this.remaining === -2) {
      body?.destroy();
      socket.write(head, 'latin1');
      this.end(true);
      return;
    }
    const whole = takeWhole(body!);
    if (whole !== undefined) {
      // It came whole with the headers: head and body in one write, no listeners.
      if (whole === null || whole.length === 0) {
        socket.write(this.remaining === -1 ? `${head}0\r\n${trailerLines(m.trailers)}\r\n` : head, 'latin1');
        this.end(this.remaining <= 0);
        return;
      }
      if (this.remaining >= 0 && whole.length !== this.remaining) {
        socket.destroy(); // a body that does not match its declared length: never a second message
        this.end(false);
        return;
      }
      const before = this.remaining === -1 ? `${head}${whole.length.toString(16)}\r\n` : head;
      const after = this.remaining === -1 ? `\r\n0\r\n${trailerLines(m.trailers)}\r\n` : '';
      writeMessage(socket, before, whole, after);
      this.end(true);
      return;
    }
    socket.write(head, 'latin1');
    this.body = body;
    this.response = m;
    body![kExchange] = this;
    body!.on('data', onBodyData);
    body!.on('end', onBodyEnd);
    body!.on('error', onBodyError);
    body!.on('close', onBodyClose);
    socket.on('drain', this.onDrain);
    reclaimWhileStreaming(body!, m.headers['content-length']);
  }

  /** The status line and headers, with framing decided; undefined when one is invalid. */
  #head(
    m: MeshResponse,
    names: ReadonlyMap<string, string> | undefined,
    body: Readable | null,
  ): string | undefined {
    const status = m.status;
    if (!Number.isInteger(status) || status < 200 || status > 999) return undefined;
    const headers = endToEndHeaders(m.headers);
    const noBody = status === 204 || status === 304 || this.req.method === 'HEAD';
    const http10 = this.req.minor === 0;
    const declared = headers['content-length'];
    if (noBody || body === null) {
      this.remaining = -2;
      // A bodiless answer to a GET says so; HEAD, 204 and 304 keep what the upstream said.
      if (!noBody && declared === undefined) headers['content-length'] = '0';
    } else if (declared !== undefined) {
      const n = Number(Array.isArray(declared) ? declared[0] : declared);
      if (!Number.isSafeInteger(n) || n < 0) return undefined;
      this.remaining = n;
    } else if (!http10) this.remaining = -1;
    else {
      this.remaining = -3; // HTTP/1.0: the body ends with the connection
      this.keepAlive = false;
    }
    if (this.server.draining) this.keepAlive = false;
    // Only a chunked response can carry the trailers a `Trailer` header announces.
    if (headers.trailer !== undefined && this.remaining !== -1) delete headers.trailer;
    let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'unknown'}\r\n`;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      if (!TOKEN.test(name)) return undefined;
      const spelled = names?.get(name) ?? name;
      if (!Array.isArray(value)) {
        const v = String(value);
        if (BAD_VALUE.test(v)) return undefined;
        head += `${spelled}: ${v}\r\n`;
      } else
        for (const v of value) {
          if (BAD_VALUE.test(v)) return undefined;
          head += `${spelled}: ${v}\r\n`;
        }
    }
    if (headers.date === undefined) head += `date: ${httpDate()}\r\n`;
    if (this.remaining === -1) head += 'transfer-encoding: chunked\r\n';
    return `${head}${this.server.connectionFields(this.keepAlive, http10)}\r\n`;
  }

  /** A chunk of a streamed body. */
  data(chunk: Buffer): void {
    const socket = this.socket;
    let ok: boolean;
    if (this.remaining === -1) {
      if (chunk.length === 0) return;
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
      process.nextTick(uncork, socket);
    } else {
      if (this.remaining >= 0) {
        if (chunk.length > this.remaining) {
          // More than its Content-Length said: the rest would read as a second response.
          this.fail();
          return;
        }
        this.remaining -= chunk.length;
      }
      ok = socket.write(chunk);
    }
    if (!ok) this.body?.pause();
  }

  readonly onDrain = (): void => {
    this.body?.resume();
  };

  /** The streamed body ended: close the message (the trailers are filled by now). */
  bodyEnded(): void {
    const m = this.response;
    this.#detachBody();
    if (this.remaining === -1) this.socket.write(`0\r\n${trailerLines(m?.trailers)}\r\n`, 'latin1');
    else if (this.remaining > 0) {
      // Shorter than its Content-Length: the client would wait for the rest forever.
      this.socket.destroy();
      this.end(false);
      return;
    }
    // HTTP/1.0 without a length: keepAlive is off, so finishing ends the connection.
    this.end(true);
  }

  /** The body failed mid-way: the response cannot be completed, so the connection ends. */
  fail(): void {
    const body = this.body;
    this.#detachBody();
    body?.destroy();
    this.socket.destroy();
    this.end(false);
  }

  #detachBody(): void {
    const body = this.body;
    if (body === null) return;
    this.body = null;
    body[kExchange] = undefined;
    body.off('data', onBodyData);
    body.off('end', onBodyEnd);
    body.off('error', onBodyError);
    body.off('close', onBodyClose);
    this.socket.off('drain', this.onDrain);
  }

  /** The response is written (`whole`), or it never will be: count it out once. */
  end(whole: boolean): void {
    if (this.#done) return;
    this.#done = true;
    if (this.conn.exchange === this) this.conn.exchange = null;
    if (whole) this.cancel.clear();
    else this.cancel.abort();
    if (this.#counted) {
      this.#counted = false;
      this.server.inflight--;
    }
    // A request body still arriving after its answer (a 403 before the upload ended): the
    // connection ends rather than read and throw away the rest.
    const upload = this.upload;
    if (whole && !this.socket.destroyed)
      this.conn.finished(this.keepAlive && (upload === null || upload.complete));
    else if (!this.socket.destroyed) this.socket.destroy();
  }

  /** The connection closed before the response was written. */
  connectionClosed(): void {
    const body = this.body;
    this.#detachBody();
    body?.destroy();
    this.end(false);
  }
}

/** Bodies up to this size are copied into one buffer with their head (see writeMessage). */
const COPY_WITH_HEAD = 16 * 1024;

/**
 * One whole message: `before` (latin1: the head, header values are checked to be latin1),
 * the body, `after` (latin1). A small body is copied into one buffer with its head and written
 * once: cheaper than a vectored write of three (the TLS socket copies them into one record
 * anyway); a large one is written corked.
 */
function writeMessage(socket: Socket, before: string, body: Buffer, after: string): void {
  if (body.length <= COPY_WITH_HEAD) {
    const buf = Buffer.allocUnsafe(before.length + body.length + after.length);
    buf.write(before, 0, 'latin1');
    body.copy(buf, before.length);
    if (after.length > 0) buf.write(after, before.length + body.length, 'latin1');
    socket.write(buf);
    return;
  }
  socket.cork();
  socket.write(before, 'latin1');
  socket.write(body);
  if (after.length > 0) socket.write(after, 'latin1');
  socket.uncork();
}

function uncork(socket: Socket): void {
  socket.uncork();
}

function onBodyData(this: TrackedBody, chunk: Buffer): void {
  this[kExchange]?.data(chunk);
}

function onBodyEnd(this: TrackedBody): void {
  this[kExchange]?.bodyEnded();
}

function onBodyError(this: TrackedBody): void {
  this[kExchange]?.fail();
}

function onBodyClose(this: TrackedBody): void {
  // 'close' after 'end' never gets here (bodyEnded detached us); alone it means aborted.
  this[kExchange]?.fail();
}

/** Trailer field lines for the end of a chunked body (invalid ones are left out). */
function trailerLines(t: HeaderMap | undefined): string {
  if (t === undefined) return '';
  let out = '';
  for (const name in t) {
    const value = t[name];
    if (value === undefined || !TOKEN.test(name)) continue;
    for (const v of Array.isArray(value) ? value : [String(value)])
      if (!BAD_VALUE.test(v)) out += `${name}: ${v}\r\n`;
  }
  return out;
}

let dateAt = 0;
let dateText = '';

/** The `Date` field value, computed at most once a second (as node:http does). */
function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000 || now < dateAt) {
    dateAt = now - (now % 1000);
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/**
 * Most request header fields (Envoy's `max_headers_count` default). Node would silently drop
 * those past its own count (2000 lines) and forward the rest; here the request is refused 431.
 */
export const MAX_REQUEST_HEADERS = 100;
/**
 * Room on the inbound listener for headers the client's sidecar adds (x-hexmesh-client, trace
 * context, a route's RequestHeaderModifier), so a request the outbound listener accepted is
 * not refused one hop later.
 */
const MESH_ADDED_HEADERS = 16;

/**
 * What Node's parser accepts but a proxy must not forward: HTTP/0.9, an HTTP/1.1 request
 * without Host or with several (RFC 9112 §3.2: 400), more than `maxHeaders` header fields
 * (431, RFC 6585), an `Expect` other than 100-continue (417, RFC 9110 §10.1.1),
 * an `https://` absolute-form target on a plaintext connection (400: forwarding it would
 * silently downgrade the scheme the client asked for; as Envoy, which rejects an https
 * scheme on a plaintext listener), and a target that is neither origin-form nor absolute-form
 * (`OPTIONS *`: no upstream request can carry it).
 * Returns the reason (400) or [status, reason], or undefined for a well-formed request.
 */
function malformed(
  req: ParsedRequest,
  path: string,
  maxHeaders: number,
  socket: Socket,
): string | [number, string] | undefined {
  if (req.major !== 1) return `HTTP/${req.major}.${req.minor} is not supported`;
  const raw = req.raw;
  if (raw.length > 2 * maxHeaders)
    return [431, `more than ${maxHeaders} request headers (${raw.length / 2})`];
  const { hosts, expect } = req.fields;
  if (expect !== undefined && expect.toLowerCase() !== '100-continue')
    return [417, `unsupported expectation "${expect.slice(0, 40)}" (only 100-continue is supported)`];
  const url = req.url;
  if (url.charCodeAt(0) !== 47 /* '/' */ && /^https:/i.test(url) && !(socket as TLSSocket).encrypted)
    return 'absolute-form https:// target on a plaintext connection (the proxy would forward it as plain http)';
  if (hosts > 1) return 'more than one Host header';
  if (hosts === 0 && req.minor === 1) return 'HTTP/1.1 request without a Host header';
  if (path.charCodeAt(0) !== 47 /* '/' */)
    return `request target must start with / (got ${path.slice(0, 40)})`;
  return undefined;
}

/** Status and a short label per llhttp error; llhttp's own `reason` adds the detail. */
const REASONS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'request headers too large'],
  HPE_INVALID_HEADER_TOKEN: [400, 'invalid header'],
  HPE_UNEXPECTED_CONTENT_LENGTH: [400, 'invalid Content-Length'],
  HPE_INVALID_TRANSFER_ENCODING: [400, 'invalid Transfer-Encoding'],
  HPE_INVALID_METHOD: [400, 'invalid method'],
  HPE_INVALID_URL: [400, 'invalid request target'],
  HPE_INVALID_VERSION: [400, 'invalid HTTP version'],
  HPE_INVALID_CONTENT_LENGTH: [400, 'invalid Content-Length'],
  HPE_INVALID_CHUNK_SIZE: [400, 'invalid chunk size'],
  HPE_CR_EXPECTED: [400, 'malformed request (CR expected)'],
  HPE_LF_EXPECTED: [400, 'malformed request (LF expected)'],
  HPE_INVALID_CONSTANT: [400, 'malformed request'],
};

/** Answer on a socket the HTTP server gave up on, then close it. */
function refuse(socket: Duplex, status: number, reason: string, code = 'bad-request'): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${code === 'bad-request' ? 'bad request' : code}: ${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: text/plain\r\n` +
      `${ERROR_HEADER}: ${code}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * Malformed HTTP never reaches the app: answer 400 naming the cause (431 for oversized
 * headers: RFC 6585's status, a 4xx like any bad request). A request whose headers do not
 * arrive within `headerTimeout` (slowloris) is answered 408 by the caller.
 */
function onClientError(err: ParseError, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const known = REASONS[err.code ?? ''];
  const [status, label] = known ?? [400, 'malformed request'];
  const detail = typeof err.reason === 'string' && err.reason ? err.reason : (err.code ?? err.message);
  refuse(socket, status, `${label}: ${detail}`);
}

export type { HeaderMap };
