/**
 * HTTP/2 cleartext (prior knowledge) downstream adapter, gRPC included: streams become
 * MeshRequests; responses keep their trailers, and trailers-only responses stay so.
 *
 * Nothing a client sends may take the process down: every emitter made here has its 'error'
 * listener from creation (a body can fail before any layer consumes it), writing a response
 * that Node refuses resets that stream only, and each session is bounded by a SessionGuard
 * (concurrent streams, rapid reset, liveness after GOAWAY).
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { Cancel } from '../core/cancel.ts';
import type { HeaderMap, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { reclaimWhileStreaming } from '../core/buffer-reclaim.ts';
import { errorResponse } from '../core/error-response.ts';
import { h2SafeHeaders, keepRepeatedLines } from '../core/headers.ts';
import { relay } from '../core/relay.ts';
import { discardBody } from '../timeout/discard-body.ts';
import { InspectedSocket } from './h2-header-inspector.ts';
import { SessionGuard, SWEEP_MS, type SessionLimits } from './h2-session-guard.ts';
import { isGrpc, newContext, type ListenerIdentity } from './request-context.ts';

export interface H2Options {
  maxHeaderSize: number;
  idleTimeout: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS, and the streams of one session worked on at once. */
  maxConcurrentStreams: number;
}

const { NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_PROTOCOL_ERROR } =
  http2.constants;

/** Client resets tolerated per session per window before GOAWAY(ENHANCE_YOUR_CALM). */
const RESET_WINDOW_MS = 10_000;
const MIN_RESET_BUDGET = 200;

const kOwnReset = Symbol('hexmesh.h2.ownReset');
type Stream = http2.ServerHttp2Stream & { [kOwnReset]?: boolean };

function ignore(): void {}

export class H2Server {
  readonly #server: http2.Http2Server;
  readonly #id: ListenerIdentity;
  readonly #sessions = new Map<http2.ServerHttp2Session, SessionGuard>();
  readonly #limits: SessionLimits;
  readonly #maxHeaderSize: number;
  #sweeper: NodeJS.Timeout | undefined;
  /** The connection being handed to the HTTP/2 server (its 'session' event fires meanwhile). */
  #accepting: InspectedSocket | undefined;
  #service: Service;
  inflight = 0;

  constructor(id: ListenerIdentity, service: Service, opts: H2Options) {
    this.#id = id;
    this.#service = service;
    this.#maxHeaderSize = opts.maxHeaderSize;
    this.#limits = {
      maxStreams: opts.maxConcurrentStreams,
      resetBudget: Math.max(MIN_RESET_BUDGET, 2 * opts.maxConcurrentStreams),
      resetWindowMs: RESET_WINDOW_MS,
      idleTimeout: opts.idleTimeout,
    };
    this.#server = http2.createServer({
      maxHeaderListPairs: 256,
      maxSessionMemory: 64,
      settings: {
        maxHeaderListSize: opts.maxHeaderSize,
        maxConcurrentStreams: opts.maxConcurrentStreams,
        enableConnectProtocol: false,
      },
    });
    this.#server.on('error', ignore);
    this.#server.on('session', (s: http2.ServerHttp2Session) => {
      s.on('error', ignore);
      const guard = new SessionGuard(s, this.#limits);
      // Node made this session synchronously inside accept(): its connection is the one in hand
      // (the session's own `socket` is Node's wrapper of it, without addresses or identity).
      const conn = this.#accepting;
      if (!conn) return void s.destroy();
      conn.onFlood = () => guard.calm();
      // The bytes read during detection may already have spent the budget.
      if (conn.inspector.flooded) process.nextTick(() => guard.calm());
      this.#sessions.set(s, guard);
      s.once('close', () => this.#sessions.delete(s));
      // The session's own 'stream' event, not the server's: a stream reset in the same read as
      // its HEADERS arrives already destroyed and detached from its session.
      s.on('stream', (stream: Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) =>
        this.#onStream(guard, conn, stream, keepRepeatedLines(headers, raw)),
      );
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS).unref();
    });
  }

  #sweep(): void {
    const now = Date.now();
    for (const guard of this.#sessions.values()) guard.sweep(now);
  }

  setService(service: Service): void {
    this.#service = service;
  }

  accept(socket: Socket, head: Buffer): void {
    // The session reads the client's bytes (`head` first) through the header inspector.
    this.#accepting = new InspectedSocket(
      socket,
      head,
      { budget: this.#limits.resetBudget, windowMs: this.#limits.resetWindowMs },
      this.#maxHeaderSize,
    );
    try {
      this.#server.emit('connection', this.#accepting);
    } finally {
      this.#accepting = undefined;
    }
  }

  #onStream(guard: SessionGuard, conn: InspectedSocket, stream: Stream, h: http2.IncomingHttpHeaders): void {
    stream.on('error', ignore);
    if (stream.destroyed) {
      // HEADERS and RST_STREAM in one read (rapid reset): gone before we saw it.
      if (stream.rstCode !== NGHTTP2_NO_ERROR) guard.clientReset();
      return;
    }
    guard.streamOpened();
    const x = new H2Exchange(this, guard, conn, stream);
    stream.once('close', x.onClose);
    if (!guard.admit()) {
      // The session already has maxConcurrentStreams streams in the works (reset ones whose
      // upstream call is still winding down): refuse before any layer sees it.
      resetStream(stream, NGHTTP2_REFUSED_STREAM);
      return;
    }
    this.inflight++;
    x.admitted = true;
    void this.#handle(x, h).then(
      () => x.handled(),
      () => {
        resetStream(stream, NGHTTP2_INTERNAL_ERROR);
        x.handled();
      },
    );
  }

  async #handle(x: H2Exchange, h: http2.IncomingHttpHeaders): Promise<void> {
    const { stream, conn } = x;
    // What the header inspector found wrong with the request's fields (→ 400), if anything.
    const problem = conn.inspector.problem(stream.id ?? 0);
    if (stream.closed || stream.destroyed) return;
    const cancel = new Cancel();
    x.cancel = cancel;
    const headers = h2SafeHeaders(h as HeaderMap);
    if (h.te) headers.te = 'trailers';
    const body = stream.endAfterHeaders ? null : requestBody(stream);
    x.reqBody = body;
    const req: MeshRequest = {
      method: String(h[':method'] ?? 'GET'),
      authority: String(h[':authority'] ?? h.host ?? ''),
      path: String(h[':path'] ?? '/'),
      headers,
      body,
      protocol: 'http2',
      grpc: isGrpc(headers['content-type']),
      ctx: newContext(this.#id, conn.remoteAddress ?? '', cancel, conn),
    };
    if (body && !problem) stopOnBadTrailers(conn, stream, body, cancel);
    let res: MeshResponse;
    const bad = problem
      ? new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `bad request: ${problem}`)
      : malformed(req.method, h);
    if (bad) {
      discardBody(req.body);
      res = errorResponse(bad, req);
    } else {
      try {
        res = await this.#service(req);
      } catch (err) {
        res = errorResponse(err, req);
      }
    }
    try {
      writeResponse(x, res);
    } catch {
      // Node refused the response head (a header value no HTTP/2 peer may get): this stream
      // fails, not the process.
      discardBody(res.body);
      resetStream(stream, NGHTTP2_INTERNAL_ERROR);
    }
  }

  /** @internal An admitted stream's exchange is over: its response is written (or abandoned) and it closed. */
  exchangeDone(guard: SessionGuard): void {
    this.inflight--;
    guard.busy--;
  }

  /** Send GOAWAY on every session: clients open new streams elsewhere; open streams finish. */
  drain(): void {
    for (const s of this.#sessions.keys()) s.close();
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const s of this.#sessions.keys()) s.destroy();
    this.#server.close();
  }
}

/**
 * Malformed request trailers (RFC 9113 §8.1.1) are a stream error, found by the header
 * inspector before nghttp2 reads them (which would drop a bad field and end the body as if
 * complete): the body fails, so the upstream request is aborted, never completed, and the
 * stream is reset with PROTOCOL_ERROR. Valid trailers are not relayed. The entry goes when
 * the stream closes (`#handle`).
 */
function stopOnBadTrailers(conn: InspectedSocket, stream: Stream, body: Readable, cancel: Cancel): void {
  const id = stream.id ?? 0;
  conn.requests.set(id, (problem) => {
    conn.requests.delete(id);
    // Cancel first: the upstream stream is reset outright. A failing body alone makes the HTTP/2
    // transport close() it, and Node sends END_STREAM before that RST_STREAM: the app would
    // read a complete request first.
    cancel.abort();
    body.destroy(new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `bad request: ${problem}`));
    resetStream(stream, NGHTTP2_PROTOCOL_ERROR);
  });
}

/** Reset a stream ourselves (not counted as a client reset). */
function resetStream(stream: Stream, code: number): void {
  stream[kOwnReset] = true;
  if (!stream.destroyed) stream.close(code);
}

/**
 * One stream's state, and its one 'close' listener (issue 11: five closures and 'close'
 * listeners per stream before, each registration and removal a cost of Node's emitter).
 */
class H2Exchange {
  admitted = false;
  cancel: Cancel | undefined;
  reqBody: Readable | null = null;
  resBody: Readable | null = null;
  #handled = false;

  constructor(
    readonly server: H2Server,
    readonly guard: SessionGuard,
    readonly conn: InspectedSocket,
    readonly stream: Stream,
  ) {}

  /** The handler is through (response written or given up). */
  handled(): void {
    this.#handled = true;
    // Node destroys a stream before it emits 'close', so this also covers a close already seen.
    if (this.stream.closed || this.stream.destroyed) this.#finish();
  }

  readonly onClose = (): void => {
    const { stream, guard } = this;
    guard.streamClosed();
    const reset = stream.rstCode !== NGHTTP2_NO_ERROR;
    if (reset && !stream[kOwnReset]) guard.clientReset();
    this.conn.requests.delete(stream.id ?? 0);
    // Reset or cut short: abort the request's work; else drop the listeners still attached.
    if (reset || !stream.writableFinished) this.cancel?.abort();
    else this.cancel?.clear();
    // The client reset the stream mid-request: the consumer must see the body fail, not stall.
    const req = this.reqBody;
    if (req !== null && !stream.readableEnded) req.destroy(new Error('request stream reset by the client'));
    const res = this.resBody;
    if (res !== null && !res.readableEnded) res.destroy();
    if (this.#handled) this.#finish();
  };

  #finish(): void {
    if (!this.admitted) return;
    this.admitted = false;
    this.server.exchangeDone(this.guard);
  }
}

/**
 * What nghttp2 passes but a proxy must refuse (RFC 9113 §8.3.1, §8.5): a `host` that names
 * another authority than `:authority` (routing and authorization would see one, the app the
 * other), several `host` fields, and CONNECT (no tunnels over HTTP/2; 405 as on HTTP/1).
 */
function malformed(method: string, h: http2.IncomingHttpHeaders): HexmeshError | undefined {
  if (method === 'CONNECT')
    return new HexmeshError(
      'HEXMESH_ERR_BAD_REQUEST',
      'bad request: CONNECT is not supported (use a per-upstream local port for TCP)',
      { context: { status: 405 } },
    );
  const host = h.host;
  if (host === undefined) return undefined;
  if (Array.isArray(host))
    return new HexmeshError('HEXMESH_ERR_BAD_REQUEST', 'bad request: more than one host');
  const authority = h[':authority'];
  if (typeof authority === 'string' && authority.toLowerCase() !== host.toLowerCase())
    return new HexmeshError(
      'HEXMESH_ERR_BAD_REQUEST',
      `bad request: host (${host.slice(0, 100)}) differs from :authority (${authority.slice(0, 100)})`,
    );
  return undefined;
}

/**
 * The request half of a stream as a Readable of its own. Consumers may destroy the body they
 * sent (undici does, once it is written); destroying the stream itself would reset the
 * response half too. A body dropped early (upstream answered first) is drained and discarded.
 * A reset stream fails the body (H2Exchange.onClose).
 */
function requestBody(stream: http2.ServerHttp2Stream): Readable {
  const body = new PassThrough();
  // The body may fail (client reset, content-length mismatch) before any layer listens, e.g.
  // while a cold upstream connection is being made. Consumers see it as `destroyed`/`errored`.
  body.on('error', ignore);
  const copy = relay(stream, body);
  body.once('close', () => {
    if (stream.readableEnded) return;
    copy.stop();
    stream.resume();
  });
  return body;
}

function writeResponse(x: H2Exchange, m: MeshResponse): void {
  const stream = x.stream;
  if (stream.destroyed || stream.closed) {
    discardBody(m.body);
    return;
  }
  const headers = h2SafeHeaders(m.headers) as http2.OutgoingHttpHeaders;
  headers[':status'] = m.status;
  const body = m.body;
  if (!body) {
    // Trailers-only (gRPC errors) or empty responses end with the headers.
    stream.respond(headers, { endStream: true });
    return;
  }
  stream.respond(headers, { waitForTrailers: true });
  stream.once('wantTrailers', () => {
    const t = m.trailers;
    // Empty trailers make Node end the stream with an empty DATA frame (END_STREAM); close()
    // would reset the stream instead, and clients see a truncated response.
    try {
      stream.sendTrailers(t ? (h2SafeHeaders(t) as http2.OutgoingHttpHeaders) : {});
    } catch {
      resetStream(stream, NGHTTP2_INTERNAL_ERROR);
    }
  });
  body.on('error', () => resetStream(stream, NGHTTP2_INTERNAL_ERROR));
  // The stream closing first destroys the body (H2Exchange.onClose).
  x.resBody = body;
  relay(body, stream);
  reclaimWhileStreaming(body, headers['content-length'] as string | undefined);
}
