/**
 * Config distribution to proxies: the WebSocket endpoint `/v1/discovery` on the control
 * plane's HTTP server (protocol in protocol.ts, docs/config-distribution.md).
 *
 * - `hello` registers the proxy's instance in the catalog under a store lease that lives as
 *   long as the stream (pings every `pingInterval`; a proxy that stops answering is cut and
 *   its lease lapses after `leaseTtl`; a proxy that closes cleanly is removed at once).
 * - Proxies subscribe per destination, lazily (Linkerd), never to everything (Istio's
 *   known scaling pain). Views are built once per destination and shared.
 * - One store watch feeds the whole server; changes are coalesced for `coalesce` ms so a
 *   burst of writes becomes one delta per affected proxy.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { KEYS, StoreLeaseNotFoundError, type Store } from '../../store/store.ts';
import { Catalog } from '../catalog/catalog.ts';
import { DestinationViews } from './destination-views.ts';
import { MeshState, type StateChange } from './mesh-state.ts';
import {
  CLOSE,
  DISCOVERY_PATH,
  LIMITS,
  closeReason,
  parseClientMessage,
  type ClientMessage,
} from './protocol.ts';
import { ProxySession, type ProxyStatus } from './proxy-session.ts';
import { principalOf, requireSelf, type Principal } from '../auth/api-auth.ts';
import { hostPort, peerHost, portOf } from '../auth/caller-address.ts';

export type { ProxyStatus } from './proxy-session.ts';

type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

/** What the discovery server needs from the control plane (ControlPlane is one). */
export interface DiscoveryHost {
  /** The control plane's HTTP server. */
  readonly httpServer: http.Server;
  readonly store: Store;
  /** Route upgrades of one path to a handler; without it, an 'upgrade' listener is added. */
  onUpgrade?(path: string, handler: UpgradeHandler, permission?: 'discovery'): void;
  /** Run `fn` when the host closes. */
  onClose?(fn: () => unknown): void;
  /**
   * Follows the credentials streams were opened with (ControlPlane.credentials): `cut` when one
   * is revoked or expires. Absent: a stream lives on whatever becomes of its credential.
   */
  readonly credentials?: {
    hold(p: Principal | undefined, cut: (err: Error) => void): () => void;
  };
  /** The workload CA (ControlPlane.identity): its trust domain fills endpoints' expected identities. */
  readonly identity?: { readonly trustDomain: string };
  /** The REST router, to mount `GET /v1/proxies`. */
  readonly router?: {
    add(
      method: string,
      pattern: string,
      handler: () => Promise<{ json: unknown }>,
      permission?: 'catalog:read',
    ): unknown;
  };
}

export interface DiscoveryOptions {
  /** Lease of a proxy's registration; it lapses this long after the stream dies. Default 15 s. */
  leaseTtl?: number;
  /** WebSocket ping and lease keep-alive period. Default leaseTtl / 3. */
  pingInterval?: number;
  /** Quiet period that batches store changes into one delta. Default 50 ms. */
  coalesce?: number;
  /** A stream must say hello within this. Default 10 s. */
  helloTimeout?: number;
  maxSubscriptions?: number;
  maxMessageBytes?: number;
  messagesPerSecond?: number;
  /**
   * Unsent bytes all proxies' sockets may hold together (default 256 MiB). Past it, the proxies
   * holding the most are cut (4008) until the rest fit: a few stalled proxies cannot take the
   * control plane's memory (six took it from 123 to 859 MB with only the per-proxy cap).
   */
  sendBudget?: number;
  /** Unsent bytes one proxy's socket may hold before it is cut (default 64 MiB). */
  maxBufferedPerProxy?: number;
  /** Where to report store errors that cannot be answered to anyone (default: stderr). */
  log?: (line: string) => void;
}

/** A proxy whose socket holds more unsent data than this is too slow: it is cut (it resyncs on reconnect). */
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
/** Unsent data of all proxies together (DiscoveryOptions.sendBudget). */
const SEND_BUDGET_BYTES = 256 * 1024 * 1024;

/** Lease keep-alives in flight at once; the event loop serves I/O between batches. */
const KEEPALIVE_BATCH = 8;

export class DiscoveryServer {
  readonly #host: DiscoveryHost;
  readonly #catalog: Catalog;
  readonly #state: MeshState;
  readonly #views: DestinationViews;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Set<ProxySession>();
  /** Live streams by `namespace/service/id` (ProxySession.key). */
  readonly #byId = new Map<string, ProxySession>();
  /** destination key → sessions whose effective set holds it. */
  readonly #subscribers = new Map<string, Set<ProxySession>>();
  readonly #opts: Required<Omit<DiscoveryOptions, 'log'>>;
  readonly #log: (line: string) => void;
  #dirtyResources = false;
  readonly #dirtySets = new Set<string>();
  #flushTimer: NodeJS.Timeout | undefined;
  #ticker: NodeJS.Timeout;
  /** Live streams whose lease is due a keep-alive (see #renewLeases). */
  readonly #renewQueue = new Set<ProxySession>();
  #renewing = false;
  /** Revision the views reflect (the last flush). */
  #version = 0;
  /**
   * Unsent bytes over all sockets: exact after each #enforceBudget, plus what was sent since
   * (an upper bound: sockets drain meanwhile), so the O(proxies) sum runs only near the budget.
   */
  #unsent = 0;
  #closed = false;
  readonly #onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
    this.#upgrade(req, socket, head);

  constructor(host: DiscoveryHost, opts: DiscoveryOptions = {}) {
    this.#host = host;
    const leaseTtl = opts.leaseTtl ?? 15_000;
    this.#opts = {
      leaseTtl,
      pingInterval: opts.pingInterval ?? Math.max(100, Math.floor(leaseTtl / 3)),
      coalesce: opts.coalesce ?? 50,
      helloTimeout: opts.helloTimeout ?? 10_000,
      maxSubscriptions: opts.maxSubscriptions ?? LIMITS.maxSubscriptions,
      maxMessageBytes: opts.maxMessageBytes ?? LIMITS.maxClientMessageBytes,
      messagesPerSecond: opts.messagesPerSecond ?? LIMITS.messagesPerSecond,
      sendBudget: opts.sendBudget ?? SEND_BUDGET_BYTES,
      maxBufferedPerProxy: opts.maxBufferedPerProxy ?? MAX_BUFFERED_BYTES,
    };
    this.#log = opts.log ?? ((l) => process.stderr.write(`hexmesh discovery: ${l}\n`));
    this.#catalog = new Catalog(host.store);
    this.#state = new MeshState(host.store, (c) => this.#onChange(c));
    this.#views = new DestinationViews(this.#state, () => host.identity?.trustDomain);
    void this.#state.ready.then(() => (this.#version = this.#state.revision));
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.#opts.maxMessageBytes,
      perMessageDeflate: false,
    });
    if (host.onUpgrade) host.onUpgrade(DISCOVERY_PATH, this.#onUpgrade, 'discovery');
    else host.httpServer.on('upgrade', this.#onUpgrade);
    host.onClose?.(() => this.close());
    this.#ticker = setInterval(() => this.#tick(), this.#opts.pingInterval);
    this.#ticker.unref();
    host.router?.add('GET', '/v1/proxies', async () => ({ json: this.proxies() }), 'catalog:read');
  }

  /** Resolves once the store mirror is loaded (streams wait for it before their snapshot). */
  get ready(): Promise<void> {
    return this.#state.ready;
  }

  /** Bytes queued to proxies and not yet sent, over all streams (what the send budget bounds). */
  get unsent(): number {
    let n = 0;
    for (const s of this.#sessions) n += s.ws.bufferedAmount;
    return n;
  }

  /** Every connected proxy on this replica, by id. */
  proxies(): ProxyStatus[] {
    return [...this.#byId.values()].map((s) => s.status()).sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * `GET /v1/proxies` for a server without a router hook: returns true when it answered.
   * (Mounted automatically when the host passes `router`.)
   */
  handleProxiesRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/v1/proxies') return false;
    const body = JSON.stringify(this.proxies());
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  }

  #upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== DISCOVERY_PATH) {
      // Leave other paths to other upgrade handlers; alone, refuse them.
      if (this.#host.httpServer.listenerCount('upgrade') === 1)
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if (this.#closed) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    socket.on('error', () => {});
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req));
  }

  #accept(ws: WebSocket, req: http.IncomingMessage): void {
    const s = new ProxySession(ws, this.#opts.messagesPerSecond * 2);
    // Who the control plane authenticated at the upgrade (undefined with auth off).
    s.principal = principalOf(req);
    s.peer = peerHost(req.socket);
    this.#sessions.add(s);
    const release = this.#host.credentials?.hold(s.principal, (err) =>
      this.#close(s, CLOSE.unauthenticated, err.message),
    );
    const helloTimer = setTimeout(() => {
      if (!s.node) this.#close(s, CLOSE.policy, `no hello within ${this.#opts.helloTimeout} ms`);
    }, this.#opts.helloTimeout);
    helloTimer.unref();
    ws.on('message', (data, isBinary) => this.#onMessage(s, data, isBinary));
    ws.on('pong', () => (s.alive = true));
    ws.on('error', () => {}); // 'close' follows; ws reports oversize frames here (closed with 1009)
    ws.on('close', (code) => {
      clearTimeout(helloTimer);
      release?.();
      this.#drop(s, code === 1000);
    });
  }

  #onMessage(s: ProxySession, data: RawData, isBinary: boolean): void {
    if (s.closed) return;
    if (isBinary)
      return this.#close(s, CLOSE.unsupportedData, 'binary frames are not supported: send JSON text');
    // Token bucket: a flood of messages closes the stream rather than queueing work.
    const now = Date.now();
    const rate = this.#opts.messagesPerSecond;
    s.tokens = Math.min(rate * 2, s.tokens + ((now - s.tokensAt) / 1000) * rate);
    s.tokensAt = now;
    if (s.tokens < 1) return this.#close(s, CLOSE.policy, `more than ${rate} messages per second`);
    s.tokens -= 1;
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : data.toString();
    const r = parseClientMessage(text);
    if (!r.ok)
      return this.#close(
        s,
        r.reason.startsWith('invalid JSON') ? CLOSE.invalidPayload : CLOSE.policy,
        r.reason,
      );
    const msg = r.msg;
    if (msg.type === 'hello') {
      if (s.node) return this.#close(s, CLOSE.policy, 'hello sent twice');
      // A workload speaks only for its own service (service account = service name).
      try {
        requireSelf(s.principal, msg.node.namespace, msg.node.service, msg.node.id);
      } catch (err) {
        // A close reason holds 123 bytes: the mismatch itself, without the SPIFFE ID prefix.
        return this.#close(s, CLOSE.policy, (err as Error).message.replace(/^workload \S+ /, ''));
      }
      s.node = msg.node;
      const adminPort =
        msg.node.adminPort ??
        (msg.node.adminAddress === undefined ? undefined : portOf(msg.node.adminAddress));
      s.adminAddress =
        s.peer === undefined || adminPort === undefined ? undefined : hostPort(s.peer, adminPort);
      const hello = this.#hello(s, msg);
      // Status reports go through `writes` after the registration they update: a proxy sends
      // its status right behind hello, and over a store with real latency (etcd across hosts)
      // it would otherwise reach the catalog first, fail as "not found" and be lost.
      s.writes = s.writes.then(
        () => hello,
        () => hello,
      );
      s.writes = s.writes.catch((err: Error) =>
        this.#close(s, CLOSE.storeUnavailable, `registration failed: ${err.message}`),
      );
      return;
    }
    if (!s.node) return this.#close(s, CLOSE.policy, `expected hello first, got ${msg.type}`);
    switch (msg.type) {
      case 'subscribe':
        return this.#subscribe(s, msg.services);
      case 'ack':
        if (msg.version > s.version) return; // acks of versions never sent are ignored
        s.acked = Math.max(s.acked, msg.version);
        if (s.nack && s.acked >= s.nack.version) s.nack = undefined;
        return;
      case 'nack':
        s.nack = { version: msg.version, error: msg.error };
        return;
      case 'status': {
        const n = s.node;
        if (n.appPort === undefined) return;
        s.writes = s.writes
          .then(() => this.#catalog.setStatus(n.namespace, n.service, n.id, msg.status, msg.output))
          .then(
            () => {},
            (err: Error) => this.#log(`status of ${n.id}: ${err.message}`),
          );
        return;
      }
    }
  }

  async #hello(s: ProxySession, msg: Extract<ClientMessage, { type: 'hello' }>): Promise<void> {
    await this.#state.ready;
    const old = this.#byId.get(s.key);
    if (old && old !== s) this.#close(old, CLOSE.replaced, 'replaced by a newer stream with the same id');
    this.#byId.set(s.key, s);
    const rev = await this.#register(s);
    // Snapshot what the proxy just wrote (its own instance): wait for the watch, flush now.
    await this.#state.caughtUp(rev);
    if (this.#flushTimer) {
      clearTimeout(this.#flushTimer);
      this.#flush();
    }
    if (s.closed) return;
    s.explicit.add(s.self);
    this.#addSubscriptions(s, msg.services ?? []);
    this.#recompute(s);
    this.#send(
      s,
      s.snapshot(this.#version, (k) => this.#views.get(k)),
    );
  }

  /** Grant a lease and write the instance (if the proxy fronts an app) and the proxy record. */
  async #register(s: ProxySession): Promise<number> {
    const n = s.node!;
    const lease = await this.#host.store.grantLease(this.#opts.leaseTtl);
    s.lease = lease;
    if (n.appPort !== undefined) {
      const inst = await this.#catalog.register(
        {
          id: n.id,
          service: n.service,
          namespace: n.namespace,
          address: n.address,
          port: n.appPort,
          ...(n.meshPort !== undefined && { meshPort: n.meshPort }),
          ...(s.adminAddress !== undefined && { adminAddress: s.adminAddress }),
          labels: n.labels,
          checks: n.checks,
        },
        { lease },
      );
      // Without checks there is nothing to wait for: the instance is ready when its sidecar is.
      if (n.checks.length === 0 && inst.status !== 'passing')
        await this.#catalog.setStatus(n.namespace, n.service, n.id, 'passing', 'sidecar connected');
    }
    const w = await this.#host.store.put(
      `${KEYS.proxies}${s.key}`,
      JSON.stringify({
        id: n.id,
        service: n.service,
        namespace: n.namespace,
        address: n.address,
        ...(s.adminAddress !== undefined && { adminAddress: s.adminAddress }),
        connectedAt: s.connectedAt,
      }),
      { lease },
    );
    return w.revision;
  }

  #addSubscriptions(s: ProxySession, names: readonly string[]): void {
    let refused = 0;
    for (const raw of names) {
      const key = raw.includes('.') ? raw : `${raw}.${s.node!.namespace}`;
      if (s.explicit.has(key)) continue;
      if (s.explicit.size >= this.#opts.maxSubscriptions) refused++;
      else s.explicit.add(key);
    }
    if (refused)
      this.#send(
        s,
        JSON.stringify({
          type: 'error',
          message: `subscription limit of ${this.#opts.maxSubscriptions} reached: ${refused} refused`,
        }),
      );
  }

  #subscribe(s: ProxySession, names: readonly string[]): void {
    if (s.lease === 0) {
      // Still registering: the hello's snapshot will include these.
      this.#addSubscriptions(s, names);
      return;
    }
    this.#addSubscriptions(s, names);
    this.#recompute(s);
    this.#send(
      s,
      s.snapshot(this.#version, (k) => this.#views.get(k)),
    );
  }

  /** effective = explicit + the destinations their routes and policies name, bounded. */
  #recompute(s: ProxySession): void {
    const next = new Set<string>();
    const queue = [...s.explicit];
    for (let i = 0; i < queue.length && next.size < this.#opts.maxSubscriptions; i++) {
      const k = queue[i];
      if (next.has(k)) continue;
      next.add(k);
      for (const d of this.#views.get(k).deps) if (!next.has(d)) queue.push(d);
    }
    for (const k of s.effective) if (!next.has(k)) this.#unindex(s, k);
    for (const k of next) {
      let set = this.#subscribers.get(k);
      if (!set) this.#subscribers.set(k, (set = new Set()));
      set.add(s);
    }
    s.effective = next;
  }

  #unindex(s: ProxySession, key: string): void {
    const set = this.#subscribers.get(key);
    set?.delete(s);
    if (set && set.size === 0) {
      this.#subscribers.delete(key);
      this.#views.forget(key);
    }
  }

  #onChange(c: StateChange): void {
    if (c.resources) this.#dirtyResources = true;
    for (const k of c.instanceSets) this.#dirtySets.add(k);
    // Not reset by later changes: a steady stream of writes still flushes every `coalesce` ms.
    this.#flushTimer ??= setTimeout(() => this.#flush(), this.#opts.coalesce);
  }

  #flush(): void {
    this.#flushTimer = undefined;
    const resources = this.#dirtyResources;
    const invalid = this.#views.invalidate(resources, this.#dirtySets);
    this.#dirtyResources = false;
    this.#dirtySets.clear();
    this.#version = this.#state.revision;
    const affected = new Set<ProxySession>();
    if (resources) {
      // Routes may pull in (or drop) other destinations: every proxy's set is recomputed.
      for (const s of this.#byId.values()) if (s.lease) affected.add(s);
    } else for (const k of invalid) for (const s of this.#subscribers.get(k) ?? []) affected.add(s);
    const view = (k: string) => this.#views.get(k);
    for (const s of affected) {
      if (s.closed) continue;
      if (resources) this.#recompute(s);
      const msg = s.delta(this.#version, view);
      if (msg) this.#send(s, msg);
    }
  }

  /** Ping every stream, cut the silent ones, and queue the live ones' leases for renewal. */
  #tick(): void {
    for (const s of this.#sessions) {
      if (!s.alive) {
        s.ws.terminate();
        continue;
      }
      s.alive = false;
      s.ws.ping();
      if (s.lease) this.#renewQueue.add(s);
    }
    if (!this.#renewing) void this.#renewLeases();
  }

  /**
   * Renew queued leases a few at a time, yielding to I/O between batches. With the embedded
   * store a keep-alive is a synchronous fsync'd write (~1-2 ms): renewing 1,000 leases in one
   * go blocked the event loop for seconds every tick and held every delta back
   * (bench/control measured a 2.5 s p99 at 1,000 proxies).
   */
  async #renewLeases(): Promise<void> {
    this.#renewing = true;
    try {
      while (this.#renewQueue.size > 0 && !this.#closed) {
        const batch: Promise<void>[] = [];
        for (const s of this.#renewQueue) {
          this.#renewQueue.delete(s);
          batch.push(this.#keepAlive(s));
          if (batch.length >= KEEPALIVE_BATCH) break;
        }
        await Promise.all(batch);
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.#renewing = false;
    }
  }

  #keepAlive(s: ProxySession): Promise<void> {
    if (s.closed || !s.lease) return Promise.resolve();
    s.writes = s.writes
      .then(() => this.#host.store.keepAlive(s.lease))
      .catch(async (err: Error) => {
        if (s.closed) return;
        // The lease lapsed (store stalled longer than the TTL): register again.
        if (err instanceof StoreLeaseNotFoundError) void (await this.#register(s));
        else throw err;
      })
      .catch((err: Error) => this.#log(`keep-alive of ${s.node?.id}: ${err.message}`));
    return s.writes;
  }

  #send(s: ProxySession, msg: string): void {
    if (s.closed) return;
    const held = s.ws.bufferedAmount;
    if (held > this.#opts.maxBufferedPerProxy) {
      this.#log(`cut slow proxy ${s.node?.id ?? '(no hello)'}: ${mib(held)} unsent, over the per-proxy cap`);
      return this.#close(s, CLOSE.slowConsumer, 'too slow: send buffer over limit, reconnect to resync');
    }
    s.ws.send(msg);
    this.#unsent += msg.length;
    if (this.#unsent > this.#opts.sendBudget) this.#enforceBudget();
  }

  /**
   * Sum what every socket still holds; while over the send budget, cut the proxies holding the
   * most (the slowest consumers), each logged with its reason. The cut ones resync on reconnect.
   */
  #enforceBudget(): void {
    const held: [ProxySession, number][] = [];
    let total = 0;
    for (const s of this.#sessions) {
      const n = s.ws.bufferedAmount;
      if (n === 0) continue;
      total += n;
      held.push([s, n]);
    }
    const budget = this.#opts.sendBudget;
    if (total > budget) {
      held.sort((a, b) => b[1] - a[1]);
      for (const [s, n] of held) {
        if (total <= budget) break;
        total -= n;
        this.#log(
          `cut slow proxy ${s.node?.id ?? '(no hello)'}: ${mib(n)} unsent; all proxies held ${mib(total + n)}, over the send budget of ${mib(budget)}`,
        );
        this.#close(
          s,
          CLOSE.slowConsumer,
          `too slow: over the control plane's send budget (${mib(n)} unsent), reconnect to resync`,
        );
      }
    }
    this.#unsent = total;
  }

  #close(s: ProxySession, code: number, reason: string): void {
    if (s.closed) return;
    s.ws.close(code, closeReason(reason));
    // A peer that does not complete the closing handshake is cut after a grace period.
    setTimeout(() => s.ws.terminate(), 2000).unref();
    this.#drop(s, false);
  }

  /** Forget a stream. A clean close (1000) by the proxy deregisters at once; otherwise the lease lapses. */
  #drop(s: ProxySession, deregister: boolean): void {
    if (s.closed) return;
    s.closed = true;
    this.#sessions.delete(s);
    this.#renewQueue.delete(s);
    for (const k of s.effective) this.#unindex(s, k);
    if (s.node === undefined || this.#byId.get(s.key) !== s) return;
    this.#byId.delete(s.key);
    if (deregister && s.lease && !this.#closed) void this.#host.store.revokeLease(s.lease).catch(() => {});
  }

  /** Stop accepting, close every stream (1001: proxies reconnect elsewhere), stop the watch. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#host.httpServer.off('upgrade', this.#onUpgrade);
    clearInterval(this.#ticker);
    clearTimeout(this.#flushTimer);
    for (const s of [...this.#sessions]) this.#close(s, CLOSE.goingAway, 'control plane shutting down');
    this.#state.close();
    await new Promise<void>((r) => this.#wss.close(() => r()));
  }
}

/**
 * Attach the discovery endpoint (`/v1/discovery`) to a control plane's HTTP server.
 * Call `close()` on the result before closing the server.
 */
export function attachDiscovery(cp: DiscoveryHost, opts?: DiscoveryOptions): DiscoveryServer {
  return new DiscoveryServer(cp, opts);
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
