/**
 * Bounds the connections a sidecar holds from its clients, so that one client cannot take
 * every file descriptor: `proxy.maxDownstreamConnections` over all the proxy's listeners
 * (Envoy's `max_active_downstream_connections`) and `proxy.maxConnectionsPerClient` per
 * client: its source address when the connection is accepted, and on mTLS also its peer
 * identity once the handshake is done (a certificate used from many hosts is one client).
 *
 * A connection over a limit is closed at accept, before any byte is read; the refusals are
 * counted (`hexmesh_connections_refused_total{listener,reason}`) and logged, one line per
 * reason at most every minute with the number refused since.
 */
import type net from 'node:net';
import { Counter, type Registry } from 'prom-client';

export interface ConnectionLimits {
  /** Connections open at once on all listeners together. */
  maxConnections: number;
  /** Connections open at once from one source address, or one mTLS peer identity. */
  maxPerClient: number;
}

type Reason = 'total' | 'client' | 'identity';

const LOG_EVERY_MS = 60_000;

export class ConnectionLimiter {
  #limits: ConnectionLimits;
  #total = 0;
  readonly #perClient = new Map<string, number>();
  readonly #refused: Counter<'listener' | 'reason'> | undefined;
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  /** Per reason: when the last line was logged, and refusals since. */
  readonly #logState = new Map<Reason, { at: number; since: number }>();

  constructor(
    limits: ConnectionLimits,
    opts: { registry?: Registry; log?: (line: string) => void; now?: () => number } = {},
  ) {
    this.#limits = limits;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log ?? ((l) => process.stderr.write(`hexmesh proxy: ${l}\n`));
    if (opts.registry)
      this.#refused = new Counter({
        name: 'hexmesh_connections_refused_total',
        help: 'Client connections closed at accept: over proxy.maxDownstreamConnections (total) or proxy.maxConnectionsPerClient (client, identity)',
        labelNames: ['listener', 'reason'],
        registers: [opts.registry],
      });
  }

  /** New limits (a new config): connections already open stay, new ones are held to them. */
  setLimits(limits: ConnectionLimits): void {
    this.#limits = limits;
  }

  /** Connections counted now (all listeners). */
  get open(): number {
    return this.#total;
  }

  /**
   * Count a connection just accepted against the total and its source address; false (and
   * nothing counted) if either is full. Released when the socket closes.
   */
  admit(socket: net.Socket, listener: string): boolean {
    if (this.#total >= this.#limits.maxConnections) {
      this.#refuse('total', listener, `${this.#limits.maxConnections} connections open on all listeners`);
      return false;
    }
    const client = `addr:${socket.remoteAddress ?? ''}`;
    if (!this.#take(client)) {
      this.#refuse(
        'client',
        listener,
        `${this.#limits.maxPerClient} connections open from ${socket.remoteAddress}`,
      );
      return false;
    }
    this.#total++;
    socket.once('close', () => {
      this.#total--;
      this.#release(client);
    });
    return true;
  }

  /**
   * Count an mTLS connection against its peer identity as well; false (nothing counted) if
   * that identity holds `maxPerClient` connections already.
   */
  admitIdentity(socket: net.Socket, identity: string, listener: string): boolean {
    const client = `id:${identity}`;
    if (!this.#take(client)) {
      this.#refuse('identity', listener, `${this.#limits.maxPerClient} connections open from ${identity}`);
      return false;
    }
    socket.once('close', () => this.#release(client));
    return true;
  }

  #take(client: string): boolean {
    const n = this.#perClient.get(client) ?? 0;
    if (n >= this.#limits.maxPerClient) return false;
    this.#perClient.set(client, n + 1);
    return true;
  }

  #release(client: string): void {
    const n = (this.#perClient.get(client) ?? 1) - 1;
    if (n <= 0) this.#perClient.delete(client);
    else this.#perClient.set(client, n);
  }

  #refuse(reason: Reason, listener: string, why: string): void {
    this.#refused?.inc({ listener, reason });
    const now = this.#now();
    const s = this.#logState.get(reason);
    if (s && now - s.at < LOG_EVERY_MS) {
      s.since++;
      return;
    }
    const more = s && s.since > 0 ? ` (${s.since} more refused since the last report)` : '';
    const setting = reason === 'total' ? 'proxy.maxDownstreamConnections' : 'proxy.maxConnectionsPerClient';
    this.#log(`${listener} listener: connection refused: ${why} (${setting})${more}`);
    this.#logState.set(reason, { at: now, since: 0 });
  }
}
