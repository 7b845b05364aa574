/**
 * One request at a time over a fixed set of connections, for each protocol the load
 * generator speaks: HTTP/1.1 (undici Pool), HTTP/2 cleartext with prior knowledge
 * (node:http2 sessions) and gRPC unary (HTTP/2 POST with gRPC framing, success read from
 * the `grpc-status` trailer; hand-rolled so the generator carries no gRPC stack).
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { Pool } from 'undici';

export type Protocol = 'http1' | 'h2c' | 'grpc';
export const PROTOCOLS: readonly Protocol[] = ['http1', 'h2c', 'grpc'];

export interface Sender {
  /** Resolves with null on success, or a short reason. Never rejects. */
  send(): Promise<string | null>;
  close(): Promise<void>;
}

/** 5-byte gRPC frame header (uncompressed, length) + a 64-byte message. */
const GRPC_REQUEST = Buffer.concat([Buffer.from([0, 0, 0, 0, 64]), Buffer.alloc(64, 'q')]);
const GRPC_PATH = '/bench.Bench/Unary';

class Http1Sender implements Sender {
  private readonly pool: Pool;
  private readonly opts: { path: string; method: 'GET'; headers: Record<string, string> };
  constructor(origin: string, host: string, connections: number, path: string) {
    this.pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
    this.opts = { path, method: 'GET', headers: host ? { host } : {} };
  }
  async send(): Promise<string | null> {
    try {
      const res = await this.pool.request(this.opts);
      await res.body.dump({ limit: 1 << 20 });
      return res.statusCode >= 200 && res.statusCode < 300 ? null : `HTTP ${res.statusCode}`;
    } catch (err) {
      return (err as Error).message;
    }
  }
  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

class Http2Sender implements Sender {
  private readonly sessions: ClientHttp2Session[] = [];
  private next = 0;
  private readonly headers: Record<string, string>;
  constructor(
    origin: string,
    host: string,
    connections: number,
    path: string,
    private readonly grpc: boolean,
  ) {
    for (let i = 0; i < connections; i++) {
      const s = connect(origin);
      // Errors surface on the streams; an unhandled session 'error' would crash the generator.
      s.on('error', () => {});
      this.sessions.push(s);
    }
    this.headers = grpc
      ? {
          ':method': 'POST',
          ':path': GRPC_PATH,
          ':authority': host,
          'content-type': 'application/grpc',
          te: 'trailers',
        }
      : { ':method': 'GET', ':path': path, ':authority': host };
  }
  send(): Promise<string | null> {
    const session = this.sessions[this.next];
    this.next = (this.next + 1) % this.sessions.length;
    return new Promise((resolve) => {
      let status = 0;
      let grpcStatus: string | undefined;
      let stream;
      try {
        stream = session.request(this.headers, { endStream: !this.grpc });
      } catch (err) {
        resolve((err as Error).message);
        return;
      }
      stream.on('response', (h) => {
        status = Number(h[constants.HTTP2_HEADER_STATUS]);
        // Trailers-only responses carry grpc-status in the headers.
        if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
      });
      stream.on('trailers', (t) => {
        if (t['grpc-status'] !== undefined) grpcStatus = String(t['grpc-status']);
      });
      stream.on('data', () => {});
      stream.on('error', (err: Error) => resolve(err.message));
      stream.on('close', () => {
        if (status < 200 || status >= 300) resolve(`HTTP ${status || 'no response'}`);
        else if (this.grpc && grpcStatus !== '0') resolve(`grpc-status ${grpcStatus ?? 'missing'}`);
        else resolve(null);
      });
      if (this.grpc) stream.end(GRPC_REQUEST);
    });
  }
  async close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
  }
}

export function makeSender(protocol: Protocol, url: string, host: string, connections: number): Sender {
  const u = new URL(url);
  if (protocol === 'http1') return new Http1Sender(u.origin, host, connections, u.pathname);
  return new Http2Sender(u.origin, host || u.host, connections, u.pathname, protocol === 'grpc');
}
