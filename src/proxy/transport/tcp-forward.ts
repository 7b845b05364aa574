/** Opaque TCP forwarding: connect, optionally send a preamble, then pipe both ways. */
import net from 'node:net';
import tls from 'node:tls';

export interface TcpForwardOptions {
  host: string;
  port: number;
  connectTimeout: number;
  idleTimeout: number;
  /** Bytes to send upstream first (the tunnel header, then detected bytes). */
  preamble?: Buffer;
  onBytes?: (read: number, written: number) => void;
  onError?: (err: Error) => void;
  /** Connect with TLS (mTLS to a sidecar): options for tls.connect. */
  tls?: tls.ConnectionOptions;
}

/** The client closed before the upstream connection was established (no fault of the upstream). */
export class ClientClosedError extends Error {
  readonly code = 'ECONNABORTED';
  constructor() {
    super('client closed before the upstream connected');
  }
}

/**
 * Forward `client` to host:port. Resolves when the upstream connection is established;
 * rejects on an upstream error or connect timeout, or with ClientClosedError when the
 * client closes first.
 */
export function forwardTcp(client: net.Socket, o: TcpForwardOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    // Half-close passes through: each direction ends on its own (pipe forwards the FIN).
    const upstream = o.tls
      ? tls.connect({ ...o.tls, host: o.host, port: o.port, allowHalfOpen: true } as tls.ConnectionOptions)
      : net.connect({ host: o.host, port: o.port, noDelay: true, allowHalfOpen: true });
    if (o.tls) upstream.setNoDelay(true);
    const timer = setTimeout(
      () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
      o.connectTimeout,
    );
    upstream.once(o.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      if (o.preamble?.length) upstream.write(o.preamble);
      client.pipe(upstream);
      upstream.pipe(client);
      client.setTimeout(o.idleTimeout, () => {
        client.destroy();
        upstream.destroy();
      });
      client.resume();
      resolve();
    });
    upstream.once('error', (err) => {
      clearTimeout(timer);
      client.destroy();
      o.onError?.(err);
      reject(err);
    });
    client.once('error', () => upstream.destroy());
    client.once('close', () => {
      // Gone before the upstream connected: stop connecting and settle (the connect
      // timer would otherwise run on, and nothing would ever resolve or reject).
      clearTimeout(timer);
      upstream.destroy();
      o.onBytes?.(client.bytesRead, client.bytesWritten);
      reject(new ClientClosedError());
    });
    upstream.once('close', () => client.end());
  });
}
