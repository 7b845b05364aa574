/**
 * A TCP listener that detects the protocol of each connection and hands it to the
 * HTTP/1, HTTP/2, tunnel or opaque TCP handler. Owns its sockets for graceful drain.
 */
import net from 'node:net';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { ConnectionLimiter } from './connection-limit.ts';
import { detect, looksLikeTls, type Detected } from './detect.ts';

export interface ConnectionHandlers {
  http1?: (socket: net.Socket, head: Buffer) => void;
  http2?: (socket: net.Socket, head: Buffer) => void;
  tunnel?: (socket: net.Socket, head: Buffer) => void;
  tcp?: (socket: net.Socket, head: Buffer) => void;
  /** A TLS ClientHello (mTLS between sidecars); without this handler it is opaque `tcp`. */
  tls?: (socket: net.Socket, head: Buffer) => void;
}

export interface MeshListenerOptions {
  name: string;
  address: string;
  port: number;
  detectTimeout: number;
  /** Skip detection: every connection is opaque TCP (declared opaque / server-first ports). */
  opaque?: boolean;
  /**
   * Skip detection for one connection (transparent capture: a connection to a service port
   * declared `tcp`/`opaque`, where a server-first protocol must not wait the detection timeout).
   */
  opaqueWhen?: (socket: net.Socket) => boolean;
  /** Called when a connection is accepted (metrics). */
  onConnection?: (kind: Detected) => void;
  /** Connection limits (total, per client), shared by the proxy's listeners. */
  limiter?: ConnectionLimiter;
}

export class MeshListener {
  readonly #server: net.Server;
  readonly #opts: MeshListenerOptions;
  readonly #sockets = new Set<net.Socket>();
  #handlers: ConnectionHandlers;
  #closing = false;

  constructor(opts: MeshListenerOptions, handlers: ConnectionHandlers) {
    this.#opts = opts;
    this.#handlers = handlers;
    // Half-open sockets: a client that sends its request and then FIN (opaque TCP, often) must
    // still get the answer; Node would otherwise end our side as soon as the FIN arrives.
    this.#server = net.createServer(
      { noDelay: true, pauseOnConnect: false, allowHalfOpen: true },
      // A handler that throws fails its connection, never the process.
      (s) => this.#accept(s).catch(() => s.destroy()),
    );
    this.#server.on('error', () => {});
  }

  get name(): string {
    return this.#opts.name;
  }

  setHandlers(h: ConnectionHandlers): void {
    this.#handlers = h;
  }

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(
          new HexmeshError(
            'HEXMESH_ERR_LISTEN',
            `${this.#opts.name} listener cannot bind ${this.#opts.address}:${this.#opts.port}: ${err.code ?? err.message}`,
            {
              cause: err,
            },
          ),
        );
      this.#server.once('error', onError);
      this.#server.listen(this.#opts.port, this.#opts.address, () => {
        this.#server.removeListener('error', onError);
        resolve(this.#server.address() as net.AddressInfo);
      });
    });
  }

  get address(): net.AddressInfo | undefined {
    const a = this.#server.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  async #accept(socket: net.Socket): Promise<void> {
    if (this.#closing || this.#opts.limiter?.admit(socket, this.#opts.name) === false) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    const { kind, head } =
      this.#opts.opaque || this.#opts.opaqueWhen?.(socket)
        ? { kind: 'tcp' as const, head: Buffer.alloc(0) }
        : await detect(socket, this.#opts.detectTimeout);
    if (socket.destroyed) return;
    this.#opts.onConnection?.(kind);
    const tls = kind === 'tcp' ? this.#handlers.tls : undefined;
    if (tls && looksLikeTls(head)) return tls(socket, head);
    const handler = this.#handlers[kind];
    if (!handler) {
      // e.g. non-HTTP traffic on the outbound HTTP listener: nowhere to send it.
      socket.destroy();
      return;
    }
    // Node's HTTP/2 server expects sockets that close fully on FIN (its own default).
    if (kind === 'http2') socket.allowHalfOpen = false;
    handler(socket, head);
  }

  /** Stop accepting new connections. */
  stopAccepting(): Promise<void> {
    this.#closing = true;
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Close everything now. Idempotent. */
  destroy(): void {
    this.#closing = true;
    this.#server.close();
    for (const s of this.#sockets) s.destroy();
  }
}
