/**
 * HTTP/2 cleartext (prior knowledge) downstream adapter, gRPC included: streams become
 * MeshRequests; responses keep their trailers, and trailers-only responses stay so.
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import type { HeaderMap, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { reclaimWhileStreaming } from '../core/buffer-reclaim.ts';
import { errorResponse } from '../core/error-response.ts';
import { h2SafeHeaders } from '../core/headers.ts';
import { isGrpc, newContext, type ListenerIdentity } from './request-context.ts';

export interface H2Options {
  maxHeaderSize: number;
  idleTimeout: number;
}

export class H2Server {
  readonly #server: http2.Http2Server;
  readonly #id: ListenerIdentity;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  #service: Service;
  inflight = 0;

  constructor(id: ListenerIdentity, service: Service, opts: H2Options) {
    this.#id = id;
    this.#service = service;
    this.#server = http2.createServer({
      maxHeaderListPairs: 256,
      maxSessionMemory: 64,
      settings: { maxHeaderListSize: opts.maxHeaderSize, enableConnectProtocol: false },
    });
    this.#server.on('session', (s: http2.ServerHttp2Session) => {
      this.#sessions.add(s);
      s.setTimeout(opts.idleTimeout, () => s.close());
      s.once('close', () => this.#sessions.delete(s));
      s.on('error', () => {});
    });
    this.#server.on(
      'stream',
      (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) =>
        void this.#handle(stream, headers),
    );
  }

  setService(service: Service): void {
    this.#service = service;
  }

  accept(socket: Socket, head: Buffer): void {
    // The HTTP/2 session reads bytes already buffered on the socket, so unshift is enough.
    if (head.length) socket.unshift(head);
    this.#server.emit('connection', socket);
  }

  async #handle(stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders): Promise<void> {
    const ac = new AbortController();
    stream.once('close', () => {
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR || !stream.writableFinished) ac.abort();
    });
    stream.on('error', () => {});
    const headers = h2SafeHeaders(h as HeaderMap);
    if (h.te) headers.te = 'trailers';
    const req: MeshRequest = {
      method: String(h[':method'] ?? 'GET'),
      authority: String(h[':authority'] ?? h.host ?? ''),
      path: String(h[':path'] ?? '/'),
      headers,
      body: stream.endAfterHeaders ? null : requestBody(stream),
      protocol: 'http2',
      grpc: isGrpc(headers['content-type']),
      ctx: newContext(
        this.#id,
        stream.session?.socket?.remoteAddress ?? '',
        ac.signal,
        stream.session?.socket,
      ),
    };
    this.inflight++;
    let res: MeshResponse;
    try {
      res = await this.#service(req);
    } catch (err) {
      res = errorResponse(err, req);
    }
    writeResponse(stream, res);
    stream.once('close', () => this.inflight--);
  }

  /** Send GOAWAY on every session: clients open new streams elsewhere; open streams finish. */
  drain(): void {
    for (const s of this.#sessions) s.close();
  }

  close(): void {
    for (const s of this.#sessions) s.destroy();
    this.#server.close();
  }
}

/**
 * The request half of a stream as a Readable of its own. Consumers may destroy the body they
 * sent (undici does, once it is written); destroying the stream itself would reset the
 * response half too. A body dropped early (upstream answered first) is drained and discarded.
 */
function requestBody(stream: http2.ServerHttp2Stream): Readable {
  const body = new PassThrough();
  stream.pipe(body);
  // The client reset the stream mid-request: the consumer must see the body fail, not stall.
  stream.once('close', () => {
    if (!stream.readableEnded) body.destroy(new Error('request stream reset by the client'));
  });
  body.once('close', () => {
    if (stream.readableEnded) return;
    stream.unpipe(body);
    stream.resume();
  });
  return body;
}

function writeResponse(stream: http2.ServerHttp2Stream, m: MeshResponse): void {
  if (stream.destroyed || stream.closed) {
    m.body?.destroy();
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
    stream.sendTrailers(t ? (h2SafeHeaders(t) as http2.OutgoingHttpHeaders) : {});
  });
  body.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  stream.once('close', () => {
    if (!body.readableEnded) body.destroy();
  });
  body.pipe(stream);
  reclaimWhileStreaming(body, headers['content-length'] as string | undefined);
}
