/**
 * HTTP/1.1 transport to one origin: a pool of keep-alive connections (h1-connection.ts), one
 * request at a time on each, parsed by Node's own strict llhttp binding. Streamed bodies both
 * ways, trailers of chunked responses passed through, the keep-alive race handled
 * (h1-exchange.ts).
 *
 * Lean on purpose (issue 11): per request one exchange object, one response body stream and
 * one write of the request head; no per-request closures besides the promise's, no timers, no
 * abort controllers. The most recently used idle connection is taken first (its TCP and TLS
 * state are warm, and the others reach their idle limit and close). Requests beyond
 * `maxConnections` wait in order for a connection.
 */
import { fromSocketError } from '../../errors/hexmesh-error.ts';
import type { CancelSignal } from '../core/cancel.ts';
import type { MeshRequest, MeshResponse } from '../core/dispatch.ts';
import { H1Connection, type ConnectionPool } from './h1-connection.ts';
import { H1Exchange, type ExchangeDispatcher } from './h1-exchange.ts';
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

/** An origin's `keep-alive: timeout=N` is cut by this much, so we close first. */
const KEEP_ALIVE_MARGIN = 1000;

function closedError(target: string): Error {
  const err = new Error(`the connection pool to ${target} is closed`) as Error & { code: string };
  err.code = 'ECONNRESET';
  return err;
}

export class H1Transport implements ConnectionPool, ExchangeDispatcher {
  readonly #host: string;
  readonly #port: number;
  readonly #opts: H1TransportOptions;
  readonly #target: string;
  readonly #all = new Set<H1Connection>();
  /** Idle connections, most recently used last. */
  readonly #idle: H1Connection[] = [];
  readonly #queue: H1Exchange[] = [];
  #closing = false;
  #destroyed = false;
  #idleTimer: NodeJS.Timeout | null = null;
  /** performance.now() the idle sweep is due at. */
  #sweepAt = 0;
  #closedWaiters: (() => void)[] = [];

  constructor(host: string, port: number, opts: H1TransportOptions) {
    this.#host = host;
    this.#port = port;
    this.#opts = opts;
    this.#target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  get target(): string {
    return this.#target;
  }

  request(req: MeshRequest, signal: CancelSignal | undefined): Promise<MeshResponse> {
    if (req.method === 'CONNECT') {
      const err = new Error('CONNECT is not forwarded on the HTTP/1.1 hop') as Error & { code: string };
      err.code = 'ERR_INVALID_METHOD';
      return Promise.reject(fromSocketError(err, this.#target, req.ctx.dstService));
    }
    return new Promise<MeshResponse>((resolve, reject) => {
      this.dispatch(new H1Exchange(this, req, signal, this.#target, resolve, reject));
    });
  }

  /** @internal Send (or send again, after a stale connection) one exchange. */
  dispatch(ex: H1Exchange): void {
    if (ex.settled) return; // the signal had already aborted
    if (this.#destroyed || (this.#closing && this.#all.size === 0)) {
      ex.fail(closedError(this.#target), false);
      return;
    }
    let conn = this.#idle.pop();
    while (conn !== undefined && conn.closed) conn = this.#idle.pop();
    if (conn === undefined) {
      if (this.#all.size >= this.#opts.maxConnections) {
        this.#queue.push(ex);
        return;
      }
      conn = this.#open();
    }
    conn.start(ex);
  }

  /** @internal */
  unqueue(ex: H1Exchange): boolean {
    const i = this.#queue.indexOf(ex);
    if (i < 0) return false;
    this.#queue.splice(i, 1);
    return true;
  }

  /** @internal A connection finished an exchange. */
  onIdle(conn: H1Connection): void {
    const next = this.#queue.shift();
    if (next !== undefined) {
      conn.start(next);
      return;
    }
    if (this.#closing || this.#destroyed || (conn.idleHint > 0 && conn.idleHint <= KEEP_ALIVE_MARGIN)) {
      conn.close();
      return;
    }
    conn.idleSince = performance.now();
    this.#idle.push(conn);
    const limit = this.#idleLimit(conn);
    const due = conn.idleSince + limit;
    if (this.#idleTimer === null || due < this.#sweepAt) {
      if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
      this.#sweepAt = due;
      this.#idleTimer = setTimeout(this.#sweep, limit).unref();
    }
  }

  /** How long `conn` may stay idle: ours, or less when the origin announced less. */
  #idleLimit(conn: H1Connection): number {
    return conn.idleHint > 0
      ? Math.min(this.#opts.idleTimeout, conn.idleHint - KEEP_ALIVE_MARGIN)
      : this.#opts.idleTimeout;
  }

  /** @internal A connection closed. */
  onClosed(conn: H1Connection): void {
    if (!this.#all.delete(conn)) return;
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    // A waiting request gets the freed slot.
    const next = this.#destroyed ? undefined : this.#queue.shift();
    if (next !== undefined) this.#open().start(next);
    if (this.#all.size === 0) {
      const waiters = this.#closedWaiters;
      this.#closedWaiters = [];
      for (const w of waiters) w();
    }
  }

  #open(): H1Connection {
    const conn = new H1Connection(this, this.#host, this.#port, this.#opts);
    this.#all.add(conn);
    return conn;
  }

  /** Close idle connections past their limit; one timer for the pool. */
  readonly #sweep = (): void => {
    this.#idleTimer = null;
    const now = performance.now();
    let next = Infinity;
    for (const conn of [...this.#idle]) {
      const left = conn.idleSince + this.#idleLimit(conn) - now;
      if (left <= 0) conn.close();
      else next = Math.min(next, left);
    }
    if (next !== Infinity) {
      this.#sweepAt = now + next;
      this.#idleTimer = setTimeout(this.#sweep, Math.ceil(next)).unref();
    }
  };

  /** Close gracefully: requests in flight and queued finish, then every connection closes. */
  close(): Promise<void> {
    this.#closing = true;
    for (const conn of this.#idle.splice(0)) conn.close();
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#closedWaiters.push(resolve));
  }

  destroy(err?: Error): Promise<void> {
    this.#destroyed = true;
    this.#closing = true;
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    const reason = err ?? closedError(this.#target);
    for (const ex of this.#queue.splice(0)) ex.fail(reason, false);
    for (const conn of [...this.#all]) conn.destroy(reason);
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#closedWaiters.push(resolve));
  }
}
