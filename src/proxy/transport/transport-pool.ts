/**
 * Connections to a set of targets, one HTTP/1.1 pool and one HTTP/2 session per target,
 * created on first use and closed when the target leaves the set.
 */
import { reclaimWhileStreaming } from '../core/buffer-reclaim.ts';
import type { MeshRequest, MeshResponse } from '../core/dispatch.ts';
import { H1Transport } from './h1-transport.ts';
import { H2Transport } from './h2-transport.ts';
import { propagateGrpcTimeout } from '../timeout/grpc-timeout.ts';
import type { HopSecurity, PeerInfo } from './hop-security.ts';

export interface TransportSettings {
  connectTimeout: number;
  idleTimeout: number;
  streamIdleTimeout: number;
  maxConnections: number;
  security: HopSecurity;
}

interface Entry {
  host: string;
  port: number;
  /** The security the transports below were made with (per endpoint under mTLS). */
  security: HopSecurity;
  h1?: H1Transport;
  h2?: H2Transport;
}

export class TransportPool {
  readonly #entries = new Map<string, Entry>();
  #settings: TransportSettings;

  constructor(settings: TransportSettings) {
    this.#settings = settings;
  }

  /**
   * Send `req` to `key` (host:port) over HTTP/2 when `h2`, else pooled HTTP/1.1. `peer`: the
   * endpoint, for a security that decides per endpoint (mTLS); when its answer changes (an
   * identity arrived), the old connections close gracefully and new ones are made.
   */
  request(
    key: string,
    host: string,
    port: number,
    h2: boolean,
    req: MeshRequest,
    peer?: PeerInfo,
  ): Promise<MeshResponse> {
    const base = this.#settings.security;
    const security = peer && base.forPeer ? base.forPeer(peer) : base;
    let e = this.#entries.get(key);
    if (!e) {
      e = { host, port, security };
      this.#entries.set(key, e);
    } else if (e.security !== security) {
      void e.h1?.close();
      void e.h2?.close();
      e.h1 = e.h2 = undefined;
      e.security = security;
    }
    if (security.scheme === 'https') {
      // The handshake verifies the server is this identity (metrics, access log).
      req.ctx.tls = true;
      req.ctx.peerIdentity = security.peerIdentity ?? '';
    }
    propagateGrpcTimeout(req);
    // Uploads relay dead socket buffers as downloads do (core/buffer-reclaim.ts).
    if (req.body !== null) reclaimWhileStreaming(req.body, req.headers['content-length']);
    const signal = req.ctx.trySignal ?? req.ctx.signal;
    if (h2) {
      e.h2 ??= new H2Transport(host, port, {
        connectTimeout: this.#settings.connectTimeout,
        idleTimeout: this.#settings.idleTimeout,
        security,
      });
      return e.h2.request(req, signal);
    }
    e.h1 ??= new H1Transport(host, port, {
      connectTimeout: this.#settings.connectTimeout,
      idleTimeout: this.#settings.idleTimeout,
      bodyTimeout: this.#settings.streamIdleTimeout,
      maxConnections: this.#settings.maxConnections,
      security,
    });
    return e.h1.request(req, signal);
  }

  get settings(): TransportSettings {
    return this.#settings;
  }

  /** Apply new settings to connections opened from now on. */
  configure(settings: TransportSettings): void {
    this.#settings = settings;
  }

  /** Close (gracefully) the connections of targets not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const [key, e] of this.#entries) {
      if (keep.has(key)) continue;
      this.#entries.delete(key);
      void e.h1?.close();
      void e.h2?.close();
    }
  }

  async close(): Promise<void> {
    const all: Promise<void>[] = [];
    for (const e of this.#entries.values()) {
      if (e.h1) all.push(e.h1.close());
      if (e.h2) all.push(e.h2.close());
    }
    this.#entries.clear();
    await Promise.allSettled(all);
  }

  destroy(): void {
    for (const e of this.#entries.values()) {
      void e.h1?.destroy();
      void e.h2?.destroy();
    }
    this.#entries.clear();
  }
}
