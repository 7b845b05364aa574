/**
 * HTTP/2 transport to one origin: one multiplexed session (reconnected when it goes
 * away), streams carry bodies both ways and trailers (gRPC status).
 */
import http2 from 'node:http2';
import { HexmeshError, fromSocketError } from '../../errors/hexmesh-error.ts';
import type { CancelSignal } from '../core/cancel.ts';
import type { HeaderMap, MeshRequest, MeshResponse } from '../core/dispatch.ts';
import { h2SafeHeaders } from '../core/headers.ts';
import type { HopSecurity } from './hop-security.ts';

export interface H2TransportOptions {
  connectTimeout: number;
  idleTimeout: number;
  security: HopSecurity;
}

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

export class H2Transport {
  readonly #origin: string;
  readonly #target: string;
  readonly #opts: H2TransportOptions;
  readonly #host: string;
  #session: http2.ClientHttp2Session | undefined;
  #connecting: Promise<http2.ClientHttp2Session> | undefined;
  #closed = false;

  constructor(host: string, port: number, opts: H2TransportOptions) {
    this.#host = host;
    this.#target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.#origin = `${opts.security.scheme}://${this.#target}`;
    this.#opts = opts;
  }

  get target(): string {
    return this.#target;
  }

  #connect(service: string): Promise<http2.ClientHttp2Session> {
    const s = this.#session;
    if (s && !s.closed && !s.destroyed) return Promise.resolve(s);
    if (this.#connecting) return this.#connecting;
    if (this.#closed)
      return Promise.reject(
        new HexmeshError('HEXMESH_ERR_DRAINING', `transport to ${this.#target} is closed`),
      );
    this.#connecting = new Promise<http2.ClientHttp2Session>((resolve, reject) => {
      const session = http2.connect(this.#origin, {
        ...this.#opts.security.connectOptions(this.#host),
        peerMaxConcurrentStreams: 1000,
      });
      const timer = setTimeout(() => {
        session.destroy();
        reject(
          new HexmeshError(
            'HEXMESH_ERR_CONNECT_TIMEOUT',
            `connect timeout after ${this.#opts.connectTimeout} ms to ${this.#target}`,
            {
              context: { endpoint: this.#target, service },
            },
          ),
        );
      }, this.#opts.connectTimeout);
      session.once('connect', () => {
        clearTimeout(timer);
        this.#session = session;
        this.#connecting = undefined;
        session.setTimeout(this.#opts.idleTimeout, () => session.close());
        resolve(session);
      });
      session.once('error', (err) => {
        clearTimeout(timer);
        this.#connecting = undefined;
        reject(fromSocketError(err, this.#target, service));
      });
      session.once('close', () => {
        if (this.#session === session) this.#session = undefined;
      });
      session.once('goaway', () => {
        if (this.#session === session) this.#session = undefined;
      });
    });
    // Avoid unhandled rejections when nobody awaits a failed reconnect.
    this.#connecting.catch(() => {});
    return this.#connecting;
  }

  async request(req: MeshRequest, signal: CancelSignal | undefined): Promise<MeshResponse> {
    const session = await this.#connect(req.ctx.dstService);
    // The body failed while we connected (the client reset its stream): nothing to send.
    if (req.body?.destroyed && !req.body.readableEnded)
      throw fromSocketError(
        req.body.errored ?? new Error('request body closed before it was sent'),
        this.#target,
        req.ctx.dstService,
      );
    const h: Record<string, string | string[]> = h2SafeHeaders(req.headers) as Record<
      string,
      string | string[]
    >;
    if (req.headers.te) h.te = 'trailers';
    h[':method'] = req.method;
    h[':path'] = req.path;
    h[':authority'] = req.authority;
    h[':scheme'] = this.#opts.security.scheme;
    const stream = session.request(h, { endStream: req.body === null });
    if (signal !== undefined) cancelOnAbort(stream, signal);
    if (req.body) {
      req.body.pipe(stream);
      req.body.once('error', () => stream.close(NGHTTP2_CANCEL));
    }
    return new Promise<MeshResponse>((resolve, reject) => {
      let settled = false;
      const res: MeshResponse = { status: 502, headers: {}, body: null };
      stream.once('response', (headers, flags) => {
        settled = true;
        const status = Number(headers[':status']);
        res.status = status;
        res.headers = h2SafeHeaders(headers as HeaderMap);
        // The HEADERS frame's END_STREAM flag, not `stream.endAfterHeaders` (not yet set when
        // 'response' fires): a gRPC trailers-only response must stay trailers-only, or clients
        // (grpc-js) ignore its grpc-status and report "Call ended without gRPC status".
        res.body = flags & NGHTTP2_FLAG_END_STREAM ? null : stream;
        if (res.body === null) stream.resume();
        resolve(res);
      });
      stream.on('trailers', (t) => {
        res.trailers = h2SafeHeaders(t as HeaderMap);
      });
      stream.once('error', (err) => {
        if (!settled) {
          settled = true;
          reject(fromSocketError(err, this.#target, req.ctx.dstService));
        }
      });
      stream.once('close', () => {
        if (settled) return;
        settled = true;
        if (stream.rstCode === NGHTTP2_REFUSED_STREAM)
          reject(
            new HexmeshError('HEXMESH_ERR_CONNECT_FAILED', `stream refused by ${this.#target}`, {
              context: { endpoint: this.#target, service: req.ctx.dstService },
            }),
          );
        else
          reject(
            new HexmeshError(
              'HEXMESH_ERR_UPSTREAM_RESET',
              `upstream ${this.#target} reset the stream calling ${req.ctx.dstService} (code ${stream.rstCode})`,
              { context: { endpoint: this.#target, service: req.ctx.dstService } },
            ),
          );
      });
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    const s = this.#session;
    if (!s || s.closed) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }

  destroy(): Promise<void> {
    this.#closed = true;
    this.#session?.destroy();
    return Promise.resolve();
  }
}

/**
 * What Node's `signal` request option does, on a {@link CancelSignal}: an abort destroys the
 * stream with an AbortError (cause: the signal's reason); the listener goes with the stream.
 */
function cancelOnAbort(stream: http2.ClientHttp2Stream, signal: CancelSignal): void {
  const cancel = new StreamCancel(stream, signal);
  if (signal.aborted) return cancel.handleEvent();
  signal.addEventListener('abort', cancel);
  stream.once('close', () => signal.removeEventListener('abort', cancel));
}

class StreamCancel {
  constructor(
    readonly stream: http2.ClientHttp2Stream,
    readonly signal: CancelSignal,
  ) {}

  handleEvent(): void {
    const err = Object.assign(new Error('The operation was aborted', { cause: this.signal.reason }), {
      name: 'AbortError',
      code: 'ABORT_ERR',
    });
    this.stream.destroy(err);
  }
}
