/**
 * HTTP/1.1 downstream adapter: Node's HTTP parser (strict: bad request lines, invalid
 * header bytes, Content-Length with Transfer-Encoding and oversized headers are refused
 * before anything reaches a layer) turned into MeshRequests for one Service.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex, Readable } from 'node:stream';
import type { HeaderMap, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { Cancel, NEVER, type CancelSignal } from '../core/cancel.ts';
import { reclaimWhileStreaming } from '../core/buffer-reclaim.ts';
import { takeWhole } from '../core/whole-body.ts';
import { errorResponse, ERROR_HEADER } from '../core/error-response.ts';
import { endToEndHeaders, fieldLines, originalNames, withOriginalNames } from '../core/headers.ts';
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

export class Http1Server {
  readonly #server: http.Server;
  readonly #id: ListenerIdentity;
  /** Most request header fields: a peer sidecar's requests carry the few it adds on top. */
  readonly #maxHeaders: number;
  #service: Service;
  #draining = false;
  inflight = 0;

  constructor(id: ListenerIdentity, service: Service, opts: Http1Options, onUpgrade?: UpgradeHandler) {
    this.#id = id;
    this.#maxHeaders = MAX_REQUEST_HEADERS + (id.direction === 'inbound' ? MESH_ADDED_HEADERS : 0);
    this.#service = service;
    this.#server = http.createServer({
      maxHeaderSize: opts.maxHeaderSize,
      headersTimeout: opts.headerTimeout,
      requestTimeout: 0,
      keepAliveTimeout: opts.idleTimeout,
      connectionsCheckingInterval: Math.min(1000, opts.headerTimeout),
      requireHostHeader: false,
      joinDuplicateHeaders: false,
    });
    this.#server.on(
      'request',
      // Whatever fails while answering fails this request's connection, never the process.
      (req: http.IncomingMessage, res: http.ServerResponse) => {
        this.#handle(req, res).catch(() => res.destroy());
      },
    );
    // Node would drop headers past its own count silently: count them all, refuse in malformed().
    this.#server.maxHeadersCount = 0;
    // An `Expect` other than 100-continue: answered 417 by malformed(), not by Node's bare 417.
    this.#server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) =>
      this.#server.emit('request', req, res),
    );
    const headerTimeout = opts.headerTimeout;
    this.#server.on('clientError', (err: ParserError, socket: Duplex) =>
      onClientError(err, socket, headerTimeout),
    );
    // CONNECT tunnels are not offered (opaque TCP uses per-upstream ports); without a
    // listener Node would drop the socket with no answer at all.
    this.#server.on('connect', (_req: http.IncomingMessage, socket: Duplex) =>
      refuse(socket, 405, 'CONNECT is not supported (use a per-upstream local port for TCP)'),
    );
    if (onUpgrade)
      this.#server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        const mreq = this.#toMesh(req, NEVER, null);
        mreq.headers.upgrade = req.headers.upgrade;
        onUpgrade(mreq, socket, head);
      });
    // The server never listens itself (the mesh listener hands it detected sockets), but its
    // header-timeout sweeper only starts on 'listening'.
    this.#server.emit('listening');
  }

  /** Swap the service when config changes; in-flight requests keep the old chain. */
  setService(service: Service): void {
    this.#service = service;
  }

  /** Give the server a socket whose first bytes (`head`) were read during detection. */
  accept(socket: Socket, head: Buffer): void {
    this.#server.emit('connection', socket);
    if (head.length) socket.emit('data', head);
    socket.resume();
  }

  #toMesh(req: http.IncomingMessage, signal: CancelSignal, body: MeshRequest['body']): MeshRequest {
    let authority = req.headers.host ?? '';
    let path = req.url ?? '/';
    // Absolute-form request target (the app uses us as its HTTP proxy: HTTP_PROXY=...).
    if (path.charCodeAt(0) !== 47 /* '/' */) {
      const start = path.startsWith('http://') ? 7 : path.startsWith('https://') ? 8 : 0;
      if (start > 0) {
        const slash = path.indexOf('/', start);
        authority = slash < 0 ? path.slice(start) : path.slice(start, slash);
        path = slash < 0 ? '/' : path.slice(slash);
      }
    }
    const headers = endToEndHeaders(fieldLines(req));
    // Request trailers are not relayed, so do not announce them upstream.
    delete headers.trailer;
    const ctx = newContext(this.#id, req.socket.remoteAddress ?? '', signal, req.socket);
    ctx.requestNames = originalNames(req.rawHeaders);
    return {
      method: req.method ?? 'GET',
      authority,
      path,
      headers,
      body,
      protocol: 'http1',
      grpc: isGrpc(headers['content-type']),
      ctx,
    };
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const ex = new Exchange(this, res);
    const hasBody =
      req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    const mreq = this.#toMesh(req, ex.cancel, hasBody ? req : null);
    this.inflight++;
    let mres: MeshResponse;
    const bad = malformed(req, mreq.path, this.#maxHeaders);
    if (bad) {
      // The parser accepted it, but it must not reach a layer (RFC 9112 §3.2, §3.2.4).
      const [status, reason] = typeof bad === 'string' ? [400, bad] : bad;
      const err = new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `bad request: ${reason}`, {
        context: { status },
      });
      mres = errorResponse(err, mreq);
      res.shouldKeepAlive = false;
    } else {
      try {
        mres = await this.#service(mreq);
      } catch (err) {
        mres = errorResponse(err, mreq);
      }
    }
    if (this.#draining) res.shouldKeepAlive = false;
    try {
      writeResponse(ex, mres, mreq.ctx.responseNames);
    } catch {
      // Node refused the head (e.g. an invalid header value from upstream): drop the connection
      // rather than the process.
      mres.body?.destroy();
      res.destroy();
    }
  }

  /** Stop keep-alive on every connection; idle ones close now. */
  drain(): void {
    this.#draining = true;
    this.#server.closeIdleConnections();
  }

  close(): void {
    this.#server.close();
    this.#server.closeAllConnections();
  }
}

const kExchange = Symbol('hexmesh.http1.exchange');
type TrackedRes = http.ServerResponse & { [kExchange]?: Exchange };
type TrackedBody = Readable & { [kExchange]?: Exchange };

/**
 * One request/response on a connection: the cancellation of its context (aborted when the
 * connection goes away before the response is written, cleared once it is), the response
 * body being relayed, and the in-flight count. The stream listeners are module functions that
 * find it through the stream, so a request allocates no closures for them.
 */
class Exchange {
  readonly cancel = new Cancel();
  body: TrackedBody | null = null;
  /** The response being relayed; its `trailers` are filled by the producer before the body ends. */
  response: MeshResponse | undefined = undefined;
  #counted = true;

  constructor(
    readonly server: Http1Server,
    readonly res: TrackedRes,
  ) {
    res[kExchange] = this;
    res.once('close', onResClose);
  }

  /** The response is done or the connection went away: count it out once. */
  closed(): void {
    if (!this.res.writableFinished) this.cancel.abort();
    else this.cancel.clear();
    if (this.#counted) {
      this.#counted = false;
      this.server.inflight--;
    }
    const body = this.body;
    if (body !== null && !body.readableEnded) body.destroy();
  }
}

function onResClose(this: TrackedRes): void {
  this[kExchange]?.closed();
}

function onBodyError(this: TrackedBody): void {
  this[kExchange]?.res.destroy();
}

function onBodyEnd(this: TrackedBody): void {
  const ex = this[kExchange];
  if (!ex) return;
  addTrailers(ex.res, ex.response?.trailers);
  ex.res.end();
}

function addTrailers(res: http.ServerResponse, t: HeaderMap | undefined): void {
  if (t && Object.keys(t).length) res.addTrailers(t as http.OutgoingHttpHeaders);
}

function writeResponse(ex: Exchange, m: MeshResponse, names?: ReadonlyMap<string, string>): void {
  const res = ex.res;
  const headers = endToEndHeaders(m.headers);
  const body = m.body as TrackedBody | null;
  if (res.destroyed) {
    body?.destroy();
    return;
  }
  // A response that will carry trailers must be chunked and announce them; Node refuses a
  // `Trailer` header on a response it will not chunk (HEAD, 204/304, Content-Length, HTTP/1.0).
  if (headers.trailer !== undefined && !mayChunk(res, m.status, headers, body)) delete headers.trailer;
  res.writeHead(m.status, withOriginalNames(headers, names) as http.OutgoingHttpHeaders);
  if (!body) {
    res.end();
    return;
  }
  const whole = takeWhole(body);
  if (whole !== undefined) {
    // It came whole with the headers: head and body in one write, no pipe.
    addTrailers(res, m.trailers);
    res.end(whole ?? undefined);
    return;
  }
  ex.body = body;
  ex.response = m;
  body[kExchange] = ex;
  body.on('error', onBodyError);
  body.pipe(res, { end: false });
  body.once('end', onBodyEnd);
  reclaimWhileStreaming(body, headers['content-length']);
}

function mayChunk(
  res: http.ServerResponse,
  status: number,
  headers: HeaderMap,
  body: MeshResponse['body'],
): boolean {
  const req = res.req;
  return (
    body !== null &&
    headers['content-length'] === undefined &&
    status >= 200 &&
    status !== 204 &&
    status !== 304 &&
    req.method !== 'HEAD' &&
    req.httpVersionMinor >= 1
  );
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
  req: http.IncomingMessage,
  path: string,
  maxHeaders: number,
): string | [number, string] | undefined {
  if (req.httpVersionMajor !== 1) return `HTTP/${req.httpVersion} is not supported`;
  if (req.rawHeaders.length > 2 * maxHeaders)
    return [431, `more than ${maxHeaders} request headers (${req.rawHeaders.length / 2})`];
  const expect = req.headers.expect;
  if (expect !== undefined && expect.toLowerCase() !== '100-continue')
    return [417, `unsupported expectation "${expect.slice(0, 40)}" (only 100-continue is supported)`];
  const url = req.url ?? '';
  if (url.charCodeAt(0) !== 47 /* '/' */ && /^https:/i.test(url) && !(req.socket as TLSSocket).encrypted)
    return 'absolute-form https:// target on a plaintext connection (the proxy would forward it as plain http)';
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') hosts++;
  if (hosts > 1) return 'more than one Host header';
  if (hosts === 0 && req.httpVersionMinor === 1) return 'HTTP/1.1 request without a Host header';
  if (path.charCodeAt(0) !== 47 /* '/' */)
    return `request target must start with / (got ${path.slice(0, 40)})`;
  return undefined;
}

type ParserError = NodeJS.ErrnoException & { bytesParsed?: number; reason?: string };

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
 * headers: RFC 6585's status, a 4xx like any bad request), or 408 when the headers did
 * not arrive within `headerTimeout` (slowloris).
 */
function onClientError(err: ParserError, socket: Duplex, headerTimeout: number): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    refuse(socket, 408, `request headers not received within ${headerTimeout} ms`, 'header-timeout');
    return;
  }
  const known = REASONS[err.code ?? ''];
  const [status, label] = known ?? [400, 'malformed request'];
  const detail = typeof err.reason === 'string' && err.reason ? err.reason : (err.code ?? err.message);
  refuse(socket, status, `${label}: ${detail}`);
}

export type { HeaderMap };
