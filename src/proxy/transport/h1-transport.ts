/**
 * HTTP/1.1 transport to one origin over a pooled undici connection set: keep-alive,
 * streamed bodies both ways, trailers (chunked) passed through.
 */
import { buildConnector, Pool } from 'undici';
import { fromSocketError } from '../../errors/hexmesh-error.ts';
import type { MeshRequest, MeshResponse } from '../core/dispatch.ts';
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
      connect:
        opts.security.scheme === 'https'
          ? tlsConnector(host, opts.connectTimeout, opts.security)
          : { timeout: opts.connectTimeout, ...opts.security.connectOptions(host) },
    });
  }

  get target(): string {
    return this.#target;
  }

  async request(req: MeshRequest, signal: AbortSignal | undefined): Promise<MeshResponse> {
    const headers = req.headers as Record<string, string | string[]>;
    headers.host = req.authority;
    try {
      const r = await this.#pool.request({
        method: req.method as 'GET',
        path: req.path,
        headers,
        body: req.body ?? undefined,
        signal,
      });
      return { status: r.statusCode, headers: r.headers, body: r.body, trailers: r.trailers };
    } catch (err) {
      throw fromSocketError(err, this.#target, req.ctx.dstService);
    } finally {
      delete headers.host;
    }
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
