/**
 * HTTP/1.1 transport to one origin over a pooled undici connection set: keep-alive,
 * streamed bodies both ways, trailers (chunked) passed through.
 *
 * Requests go through `pool.dispatch` with one {@link H1Exchange} per request rather than
 * `pool.request` (whose handler, body stream, async resource and abort-listener disposable
 * cost ~10% of a proxy's CPU per request): no closure per request besides the promise's.
 *
 * The keep-alive race: an origin may close an idle keep-alive connection just as the next
 * request is written on it. A bodiless idempotent request that then fails on a reused
 * connection before any response arrived is sent again at once on another connection, as Go's
 * net/http Transport does (`shouldRetryRequest`: reused connection, nothing read, replayable
 * request) — the origin saw no complete exchange, and an idempotent method may be repeated
 * anyway (RFC 9110 §9.2.2).
 */
import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { buildConnector, errors as undiciErrors, Pool, util as undiciUtil, type Dispatcher } from 'undici';
import { fromSocketError } from '../../errors/hexmesh-error.ts';
import type { CancelSignal } from '../core/cancel.ts';
import type { HeaderMap, MeshRequest, MeshResponse } from '../core/dispatch.ts';
import { originalNames, requestNames, responseNames, withOriginalNames } from '../core/headers.ts';
import type { HopSecurity } from './hop-security.ts';

export interface H1TransportOptions {
  connectTimeout: number;
  maxConnections: number;
  /** Idle keep-alive time of upstream connections. */
  idleTimeout: number;
  /** Stream idle time: the most a response body may stall between chunks. */
  bodyTimeout: number;
  security: HopSecurity;
}

export class H1Transport {
  readonly #pool: Pool;
  readonly #target: string;
  #closed = false;

  constructor(host: string, port: number, opts: H1TransportOptions) {
    this.#target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.#pool = new Pool(`${opts.security.scheme}://${this.#target}`, {
      connections: opts.maxConnections,
      pipelining: 1,
      keepAliveTimeout: opts.idleTimeout,
      keepAliveMaxTimeout: opts.idleTimeout,
      headersTimeout: 0,
      bodyTimeout: opts.bodyTimeout,
      connect: markingConnector(
        opts.security.scheme === 'https'
          ? tlsConnector(host, opts.connectTimeout, opts.security)
          : buildConnector({
              timeout: opts.connectTimeout,
              ...opts.security.connectOptions(host),
            } as buildConnector.BuildOptions),
      ),
    });
  }

  get target(): string {
    return this.#target;
  }

  request(req: MeshRequest, signal: CancelSignal | undefined): Promise<MeshResponse> {
    // undici's request() refused CONNECT (dispatch would open a tunnel): keep refusing it.
    if (req.method === 'CONNECT')
      return Promise.reject(
        fromSocketError(
          new undiciErrors.InvalidArgumentError('invalid method'),
          this.#target,
          req.ctx.dstService,
        ),
      );
    return new Promise<MeshResponse>((resolve, reject) => {
      this.dispatch(new H1Exchange(this, req, signal, this.#target, resolve, reject));
    });
  }

  /** @internal Send (or send again, after a stale connection) one exchange. */
  dispatch(ex: H1Exchange): void {
    if (ex.settled) return; // the signal had already aborted
    const req = ex.req;
    this.#pool.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: req.path,
        headers: withOriginalNames(ex.headers, requestNames.get(req.ctx)),
        body: req.body ?? undefined,
      },
      ex,
    );
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return this.#pool.close();
  }

  destroy(err?: Error): Promise<void> {
    this.#closed = true;
    return this.#pool.destroy(err ?? null);
  }
}

/**
 * A connector that asks the security for its options at each new connection (undici copies
 * plain options once): a rotated certificate or trust bundle applies to the next handshake
 * while open connections keep theirs.
 */
function tlsConnector(host: string, timeout: number, security: HopSecurity): buildConnector.connector {
  return (options, callback) =>
    buildConnector({ timeout, ...security.connectOptions(host) } as buildConnector.BuildOptions)(
      options,
      callback,
    );
}

/**
 * Most times one request is sent again after stale keep-alive connections. Each retry takes
 * another pooled (or a new) connection, so this bounds the work when many went stale at once.
 */
const MAX_STALE_RETRIES = 3;

/** Methods that may be repeated (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * Response bytes the connection had read when it failed (bytes read since the connection was
 * ready, so a TLS handshake does not count), set on every error its socket emits.
 */
const kReadSinceConnect = Symbol('hexmesh.readSinceConnect');
/** `socket.bytesRead` when the connector handed the socket over. */
const kReadAtConnect = Symbol('hexmesh.readAtConnect');
type MarkedSocket = Socket & { [kReadAtConnect]?: number };
type MarkedError = Error & { code?: unknown; socket?: { bytesRead?: number }; [kReadSinceConnect]?: number };

function markError(this: MarkedSocket, err: MarkedError): void {
  if (err !== null && typeof err === 'object')
    err[kReadSinceConnect] = this.bytesRead - (this[kReadAtConnect] ?? 0);
}

/** Wrap a connector so that errors of its sockets say how much the connection had read. */
function markingConnector(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) =>
    connect(options, (err, socket) => {
      if (socket) {
        const s = socket as MarkedSocket;
        s[kReadAtConnect] = s.bytesRead;
        s.on('error', markError);
      }
      (callback as (e: Error | null, s: Socket | null) => void)(err, socket as Socket | null);
    });
}

/**
 * True if `err` is the origin closing or resetting a connection that had already carried a
 * response (it read bytes) — the signature of a keep-alive connection closed under a request.
 * Parse errors ("bad response"), timeouts and aborts are not stale connections.
 */
function failedOnReusedConnection(err: MarkedError): boolean {
  const code = err.code;
  if (code === 'UND_ERR_SOCKET') {
    if (err.message !== 'other side closed' && err.message !== 'closed') return false;
  } else if (code !== 'ECONNRESET' && code !== 'EPIPE') return false;
  // undici's 'closed' error (a close without a socket error) only carries its own snapshot.
  const read = err[kReadSinceConnect] ?? err.socket?.bytesRead;
  return read !== undefined && read > 0;
}

function noop(): void {}

/** What the abort listener is registered with (one shared options object). */
const ONCE = { once: true } as const;

/**
 * One request through undici's legacy dispatch handler interface (no wrapper in between):
 * the response headers settle the promise, chunks are pushed into an {@link H1Body}, the
 * trailers fill the response's `trailers` before the body ends. Behaves as undici's
 * `request()` did here: an abort of `signal` before the response rejects with its reason,
 * after it destroys the body with it; a failed request destroys the request body too.
 */
class H1Exchange implements Dispatcher.DispatchHandler {
  readonly headers: Record<string, string | string[]>;
  readonly trailers: HeaderMap = {};
  settled = false;
  #body: H1Body | null = null;
  #abort: ((err?: Error) => void) | null = null;
  #reason: Error | null = null;
  #listening = false;
  /** Times this request was sent again after a stale connection. */
  #staleRetries = 0;

  constructor(
    readonly transport: H1Transport,
    readonly req: MeshRequest,
    readonly signal: CancelSignal | undefined,
    readonly target: string,
    readonly resolve: (res: MeshResponse) => void,
    readonly reject: (err: unknown) => void,
  ) {
    this.headers = req.headers as Record<string, string | string[]>;
    this.headers.host = req.authority;
    if (signal === undefined) return;
    if (signal.aborted) {
      this.onError(abortReason(signal));
      return;
    }
    signal.addEventListener('abort', this, ONCE);
    this.#listening = true;
  }

  /** The signal's abort listener (the exchange itself: no closure). */
  handleEvent(): void {
    this.#listening = false;
    const reason = abortReason(this.signal!);
    this.#reason = reason;
    if (this.#body !== null) {
      this.#body.on('error', noop);
      this.#body.destroy(reason);
    } else if (this.#abort !== null) this.#abort(reason);
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.#reason !== null) abort(this.#reason);
    else this.#abort = abort;
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (status < 200) return true; // 1xx: undici's request() ignored them too
    const headers = undiciUtil.parseHeaders(rawHeaders) as HeaderMap;
    const names = originalNames(rawHeaders);
    if (names !== undefined) responseNames.set(this.req.ctx, names);
    const body = new H1Body(this, resume);
    this.#body = body;
    this.#settle();
    this.resolve({ status, headers, body, trailers: this.trailers });
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.#body!.push(chunk);
  }

  onComplete(rawTrailers: string[] | Buffer[] | null): void {
    if (rawTrailers !== null && rawTrailers.length > 0)
      undiciUtil.parseHeaders(rawTrailers as Buffer[], this.trailers as Record<string, string | string[]>);
    this.#body!.complete = true;
    this.#body!.push(null);
  }

  onError(err: Error): void {
    if (!this.settled && this.#mayResend(err)) {
      this.#staleRetries++;
      this.#abort = null;
      // Out of undici's error path: the failed connection finishes closing first.
      queueMicrotask(() => this.transport.dispatch(this));
      return;
    }
    if (!this.settled) {
      this.#settle();
      this.reject(fromSocketError(err, this.target, this.req.ctx.dstService));
    }
    const body = this.#body;
    if (body !== null) {
      this.#body = null;
      // As undici: after the handlers already queued, so buffered chunks are not cut short.
      queueMicrotask(() => {
        body.on('error', noop);
        body.destroy(err);
      });
    }
    const reqBody = this.req.body;
    if (reqBody !== null && !reqBody.destroyed) {
      reqBody.on('error', noop);
      // undici's util.destroy: destroying a server request must not close its socket.
      if (Object.getPrototypeOf(reqBody).constructor === IncomingMessage)
        (reqBody as unknown as { socket: unknown }).socket = null;
      reqBody.destroy(err);
    }
    this.release();
  }

  /** Send again after a stale keep-alive connection? (See the module comment.) */
  #mayResend(err: Error): boolean {
    return (
      this.#staleRetries < MAX_STALE_RETRIES &&
      this.#body === null &&
      this.req.body === null &&
      this.#reason === null &&
      IDEMPOTENT.has(this.req.method) &&
      failedOnReusedConnection(err as MarkedError)
    );
  }

  /** The response is known (headers or error): the request headers are no longer needed. */
  #settle(): void {
    this.settled = true;
    delete this.headers.host;
  }

  /** Stop listening to the signal: the body closed or the request failed. */
  release(): void {
    if (this.#listening) {
      this.#listening = false;
      this.signal!.removeEventListener('abort', this);
    }
  }

  /** undici calls `abort` for a body destroyed before it ended. */
  abortFromBody(): void {
    this.#abort?.();
  }
}

function abortReason(signal: CancelSignal): Error {
  return (signal.reason as Error | undefined) ?? new undiciErrors.RequestAbortedError();
}

/**
 * The response body: a plain Readable fed by the exchange. Reading resumes the paused
 * connection; destroying it before its end aborts the request (undici's BodyReadable did the
 * same, with `UND_ERR_ABORTED` as the error when none is given).
 */
class H1Body extends Readable {
  /** Every chunk is pushed (see core/whole-body.ts). */
  complete = false;
  readonly #ex: H1Exchange;
  readonly #resume: () => void;

  constructor(ex: H1Exchange, resume: () => void) {
    super({ highWaterMark: 64 * 1024 });
    this.#ex = ex;
    this.#resume = resume;
  }

  override _read(): void {
    this.#resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (err === null && !this.readableEnded) err = new undiciErrors.RequestAbortedError();
    if (err !== null) this.#ex.abortFromBody();
    this.#ex.release();
    callback(err);
  }
}
