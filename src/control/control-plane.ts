/**
 * The control plane server: one node:http server with the REST API (resources,
 * catalog, KV, watch, Prometheus SD, health) and the discovery WebSocket, stateless
 * over the store; a leader lease makes once-only work (the catalog reaper) run on one
 * replica.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { randomUUID } from 'node:crypto';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { Store } from '../store/store.ts';
import { Catalog } from './catalog/catalog.ts';
import { HealthReaper } from './catalog/health-reaper.ts';
import { LeaderElection } from './leader.ts';
import { ChangeTracker, Slots } from './http/blocking.ts';
import { Router } from './http/router.ts';
import { apiRequestListener } from './http/api-server.ts';
import type { ApiContext } from './api/context.ts';
import { resourceRoutes } from './api/resources.ts';
import { catalogRoutes } from './api/catalog.ts';
import { kvRoutes } from './api/kv.ts';
import { watchRoutes } from './api/watch.ts';
import { prometheusSdRoutes } from './api/prometheus-sd.ts';
import { healthRoutes } from './api/health.ts';
import { statsRoutes } from './api/stats.ts';
import { MetricsCollector, type CollectorOptions } from './metrics/collector.ts';
import { identityRoutes } from './api/identity.ts';
import { CertificateAuthority, type CaOptions } from '../identity/ca.ts';
import {
  attachDiscovery,
  type DiscoveryOptions,
  type DiscoveryServer,
} from './discovery/discovery-server.ts';
import { tapRoutes, type TapAuthorizer } from './api/tap.ts';
import { proxiesDiagnoseRoutes } from './api/proxies-diagnose.ts';
import { dashboardRoutes, type DashboardOptions } from './dashboard/dashboard-routes.ts';
import { ApiAuth, type AuthMode } from './auth/api-auth.ts';
import { ApiTokens } from './auth/api-tokens.ts';
import { LiveCredentials } from './auth/live-credentials.ts';
import type { Permission } from './auth/roles.ts';
import { tokenRoutes } from './auth/token-routes.ts';
import { errorResponse } from './http/error-response.ts';
import { crossOriginRefusal, foreignHostRefusal, isLoopbackAddress } from './http/cross-origin.ts';
import { ServingTls } from './auth/serving-tls.ts';

export interface ControlPlaneOptions {
  listen: { address: string; port: number };
  /** The state store; the caller owns it (close it after the control plane). */
  store: Store;
  /** Remove instances critical for longer than this (ms); 0 (default) never does. */
  deregisterCriticalAfterMs?: number;
  /** Catalog sweep period on the leader (default: a quarter of deregisterCriticalAfterMs, 100 ms..10 s). */
  reaperIntervalMs?: number;
  /** Leader lease TTL: how long a dead leader's work waits for a successor (default 10 s). */
  leaderTtlMs?: number;
  /** Largest request body (default 1 MiB). */
  bodyLimit?: number;
  /** Concurrent blocking queries + watches per server before 503 (default 4096). */
  maxWaiters?: number;
  /** Time limit of a non-blocking request (default 30 s). */
  requestTimeoutMs?: number;
  /** Time a client has to send a request's headers, idle new connections included (default 10 s; 408 beyond). */
  headersTimeoutMs?: number;
  /**
   * DNS names a control plane listening on loopback answers to besides `localhost` and IP
   * addresses (a reverse proxy in front passing its own Host); `tls.advertise` names count
   * too. Other names are refused: DNS rebinding (docs/api-security.md).
   */
  allowedHosts?: readonly string[];
  /** Heartbeat period of NDJSON watch streams (default 15 s). */
  watchHeartbeatMs?: number;
  /** This replica's name in the leader key (default host:pid:random). */
  id?: string;
  /** Attach the discovery WebSocket `/v1/discovery` (default true). */
  discovery?: boolean;
  discoveryOptions?: DiscoveryOptions;
  /** The workload CA (docs/identity.md). Given: created or loaded on start; absent: on first use, with defaults. */
  identity?: CaOptions;
  /** Embedded metrics collection (docs/observability.md): scrape period etc. */
  metrics?: Omit<CollectorOptions, 'store' | 'isLeader' | 'now' | 'onError'>;
  /** The web dashboard at `/` and `/ui/` (docs/dashboard.md); `false` leaves it out. Default on. */
  dashboard?: DashboardOptions | false;
  /**
   * API authentication and permissions (docs/api-security.md). Default `off` for an
   * in-process control plane (tests, embedding); `hexmesh control` passes `enforce`.
   */
  auth?: { mode: AuthMode };
  /**
   * Serve HTTPS instead of HTTP (docs/api-security.md, "Transport"). Either an operator's
   * certificate and key (PEM), or `fromCa`: a serving certificate issued by the control
   * plane's own CA for `spiffe://<td>/ns/hexmesh-system/sa/control-plane` plus DNS/IP SANs for
   * the listen address and `advertise` names, renewed before expiry. Client certificates are
   * requested (not required: people and scripts use bearer tokens) and verified against
   * `clientCaPem` (default: the CA's trust bundle, followed through rotations); a verified
   * SPIFFE ID authenticates its workload.
   */
  tls?: ControlPlaneTls;
  now?: () => number;
  /** Who may tap live traffic (`GET /v1/tap`); default: everyone (roles come with the security issue). */
  authorizeTap?: TapAuthorizer;
  /** Unexpected errors (500s and background failures), for the operator's log. */
  onError?(err: unknown): void;
}

export type ControlPlaneTls =
  | { certPem: string; keyPem: string; clientCaPem?: string }
  | {
      fromCa: true;
      /** Extra DNS names / IP addresses people and proxies reach this replica by. */
      advertise?: readonly string[];
      /** Serving certificate lifetime (default: the CA's workload lifetime, 24 h). */
      ttlMs?: number;
      /** Renew after this fraction of the lifetime (default 0.5). */
      renewFraction?: number;
    };

export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

export class ControlPlane {
  readonly store: Store;
  readonly catalog: Catalog;
  /** Feeds blocking queries; discovery can wait on it too. */
  readonly tracker: ChangeTracker;
  /** Shared limit on long-lived requests (blocking queries, watches, discovery streams may take one). */
  readonly slots: Slots;
  readonly leader: LeaderElection;
  readonly reaper: HealthReaper;
  readonly router = new Router();
  /** Scrapes the proxies' metrics while this replica leads; feeds `/v1/stats/*`. */
  readonly metrics: MetricsCollector;
  /** The workload certificate authority (state in the store). */
  readonly identity: CertificateAuthority;
  /** The one HTTP server: REST API, and WebSocket upgrades through `onUpgrade`. */
  readonly httpServer: http.Server;
  readonly id: string;
  readonly #opts: ControlPlaneOptions;
  /** API tokens of people and scripts (hashed in the store). */
  readonly tokens: ApiTokens;
  readonly auth: ApiAuth;
  /** Ends watches, taps, blocking queries and discovery streams whose credential is revoked or expires. */
  readonly credentials: LiveCredentials;
  /** The HTTPS serving certificate and client trust bundle (after start, with `tls`). */
  servingTls: ServingTls | undefined;
  readonly #upgrades = new Map<string, { handler: UpgradeHandler; permission?: Permission }>();
  readonly #closers: (() => unknown)[] = [];
  readonly #shutdown = new AbortController();
  #started = false;
  #discovery: DiscoveryServer | undefined;
  #closing: Promise<void> | undefined;

  constructor(opts: ControlPlaneOptions) {
    this.#opts = opts;
    this.store = opts.store;
    this.id = opts.id ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const now = opts.now ?? Date.now;
    this.catalog = new Catalog(this.store, { now });
    this.tracker = new ChangeTracker(this.store);
    this.slots = new Slots(opts.maxWaiters ?? 4096);
    this.reaper = new HealthReaper(this.catalog, this.store, {
      deregisterCriticalAfterMs: opts.deregisterCriticalAfterMs ?? 0,
      intervalMs: opts.reaperIntervalMs,
      now,
    });
    this.leader = new LeaderElection(this.store, {
      id: this.id,
      ttlMs: opts.leaderTtlMs ?? 10_000,
      onChange: (leader) => {
        if (leader) this.reaper.start();
        else void this.reaper.stop();
      },
    });
    const ctx: ApiContext = {
      store: this.store,
      catalog: this.catalog,
      tracker: this.tracker,
      slots: this.slots,
      isLeader: () => this.leader.isLeader,
      now,
    };
    resourceRoutes(this.router, ctx);
    catalogRoutes(this.router, ctx);
    kvRoutes(this.router, ctx);
    watchRoutes(this.router, ctx, { heartbeatMs: opts.watchHeartbeatMs });
    prometheusSdRoutes(this.router, ctx);
    healthRoutes(this.router, ctx);
    this.metrics = new MetricsCollector({
      ...opts.metrics,
      store: this.store,
      isLeader: () => this.leader.isLeader,
      now,
      onError: opts.onError,
    });
    statsRoutes(this.router, ctx, this.metrics);
    this.onClose(() => this.metrics.close());
    this.identity = new CertificateAuthority(this.store, { now, ...opts.identity });
    identityRoutes(this.router, ctx, this.identity);
    tapRoutes(this.router, ctx, { authorize: opts.authorizeTap });
    proxiesDiagnoseRoutes(this.router, ctx, { proxyStatuses: () => this.#discovery?.proxies() ?? [] });
    if (opts.dashboard !== false) dashboardRoutes(this.router, opts.dashboard);
    this.tokens = new ApiTokens(this.store, now);
    this.credentials = new LiveCredentials({ store: this.store, now, onError: opts.onError });
    let trustDomain: string | undefined;
    this.auth = new ApiAuth({
      mode: opts.auth?.mode ?? 'off',
      tokens: this.tokens,
      joinTokens: this.identity.tokens,
      trustDomain: async () => {
        if (trustDomain === undefined) {
          await this.identity.start();
          trustDomain = (await this.identity.authorities()).trustDomain;
        }
        return trustDomain;
      },
      live: this.credentials,
    });
    tokenRoutes(this.router, this.tokens, this.auth);
    const serverOpts: http.ServerOptions = {
      // Time to receive a request's headers and body; handlers have their own limit.
      requestTimeout: opts.requestTimeoutMs ?? 30_000,
      headersTimeout: opts.headersTimeoutMs ?? 10_000,
      // Both are checked on this period (Node's default 30 s let a slowloris client or an idle
      // connection stay 30 s past a 10 s headersTimeout).
      connectionsCheckingInterval: Math.min(1000, opts.headersTimeoutMs ?? 1000),
      keepAliveTimeout: 65_000,
    };
    const loopbackHosts = isLoopbackAddress(opts.listen.address)
      ? new Set(
          [
            ...(opts.allowedHosts ?? []),
            ...(opts.tls && 'fromCa' in opts.tls ? (opts.tls.advertise ?? []) : []),
          ].map((h) => h.toLowerCase()),
        )
      : undefined;
    const listener = apiRequestListener(this.router, {
      bodyLimit: opts.bodyLimit ?? 1024 * 1024,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      shutdown: this.#shutdown.signal,
      onInternalError: (err) => opts.onError?.(err),
      auth: this.auth,
      credentials: this.credentials,
      loopbackHosts,
    });
    const tls = opts.tls;
    this.httpServer = tls
      ? https.createServer(
          {
            ...serverOpts,
            // An issued certificate is set in start(), before the server listens.
            ...('certPem' in tls ? { cert: tls.certPem, key: tls.keyPem } : {}),
            // Asked, not required: people and scripts come with bearer tokens instead.
            requestCert: true,
            rejectUnauthorized: false,
            minVersion: 'TLSv1.2',
          },
          listener,
        )
      : http.createServer(serverOpts, listener);
    this.httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const up = this.#upgrades.get(path);
      if (!up) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      socket.on('error', () => {});
      const refuse = (err: unknown) => {
        const { status, body } = errorResponse(err);
        const text = `${JSON.stringify(body)}\n`;
        socket.end(
          `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nconnection: close\r\n` +
            `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
        );
      };
      // A page may open a WebSocket to any origin and read what it says: not CORS-checked.
      const crossOrigin =
        (loopbackHosts ? foreignHostRefusal(req, `upgrade ${path}`, loopbackHosts) : undefined) ??
        crossOriginRefusal(req, `upgrade ${path}`);
      if (crossOrigin) return refuse(crossOrigin);
      if (!this.auth.enforced) return up.handler(req, socket, head);
      // Same rule as routes: an upgrade path that declared no permission is denied.
      this.auth
        .check(req, up.permission, `upgrade ${path}`, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)))
        .then(() => up.handler(req, socket, head), refuse);
    });
  }

  get isLeader(): boolean {
    return this.leader.isLeader;
  }

  /**
   * Route WebSocket upgrades for `path` (e.g. `/v1/discovery`) to `handler`, for callers
   * holding `permission` (none declared: denied when auth is enforced). The handler finds
   * the caller with `principalOf(req)`.
   */
  onUpgrade(path: string, handler: UpgradeHandler, permission?: Permission): void {
    this.#upgrades.set(path, { handler, permission });
  }

  /** Run `fn` when the control plane closes (before the HTTP server stops). */
  onClose(fn: () => unknown): void {
    this.#closers.push(fn);
  }

  /** The bound address (after start). */
  address(): { address: string; port: number } {
    const a = this.httpServer.address() as AddressInfo | null;
    if (!a) throw new HexmeshError('HEXMESH_ERR_LISTEN', 'control plane not started');
    return { address: a.address, port: a.port };
  }

  async start(): Promise<{ address: string; port: number }> {
    if (this.#started) return this.address();
    this.#started = true;
    await this.tracker.start();
    if (this.#opts.identity || this.#opts.tls) await this.identity.start();
    const tls = this.#opts.tls;
    if (tls && this.httpServer instanceof https.Server) {
      const serving = new ServingTls({
        ca: this.identity,
        tracker: this.tracker,
        server: this.httpServer,
        ...('certPem' in tls
          ? { static: tls, names: [] }
          : {
              names: servingNames(this.#opts.listen.address, tls.advertise ?? []),
              ...(tls.ttlMs !== undefined ? { ttlMs: tls.ttlMs } : {}),
              ...(tls.renewFraction !== undefined ? { renewFraction: tls.renewFraction } : {}),
            }),
        now: this.#opts.now,
        onError: this.#opts.onError,
      });
      await serving.start();
      this.servingTls = serving;
      this.onClose(() => serving.close());
    }
    if (this.auth.enforced) {
      await this.credentials.start();
      this.onClose(() => this.credentials.close());
    }
    if (this.#opts.discovery !== false) this.#discovery = attachDiscovery(this, this.#opts.discoveryOptions);
    const { address, port } = this.#opts.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new HexmeshError(
            'HEXMESH_ERR_LISTEN',
            `control plane cannot listen on ${address}:${port}: ${err.message}`,
            { cause: err },
          ),
        );
      this.httpServer.once('error', onError);
      this.httpServer.listen(port, address, () => {
        this.httpServer.off('error', onError);
        resolve();
      });
    });
    await this.leader.start();
    this.metrics.start();
    return this.address();
  }

  /**
   * Stop: end watches and blocking queries, resign leadership (another replica takes over
   * at once), stop accepting connections. Idempotent. Does not close the store.
   */
  close(): Promise<void> {
    return this.#stop(true);
  }

  /**
   * Stop now, as if the process died: connections are cut and the leader lease is left to
   * expire (another replica takes over after its TTL). For tests and fatal errors.
   */
  destroy(): Promise<void> {
    this.httpServer.closeAllConnections();
    return this.#stop(false);
  }

  #stop(resign: boolean): Promise<void> {
    this.#closing ??= (async () => {
      this.#shutdown.abort();
      for (const fn of this.#closers.splice(0))
        await Promise.resolve(fn()).catch((e) => this.#opts.onError?.(e));
      await this.leader.close({ resign });
      if (!resign) this.httpServer.closeAllConnections();
      await this.reaper.stop();
      this.tracker.close();
      if (!this.httpServer.listening) return;
      const closed = new Promise<void>((resolve) => this.httpServer.close(() => resolve()));
      this.httpServer.closeIdleConnections();
      const force = setTimeout(() => this.httpServer.closeAllConnections(), 2000);
      await closed;
      clearTimeout(force);
    })();
    return this.#closing;
  }
}

/**
 * SANs of an issued serving certificate: the listen address (every local address and the
 * host name for a wildcard), loopback names for a loopback or wildcard listener, and the
 * advertised names.
 */
export function servingNames(listen: string, advertise: readonly string[]): string[] {
  const names = new Set<string>();
  const wildcard = listen === '0.0.0.0' || listen === '::' || listen === '';
  if (wildcard) {
    names.add(hostname());
    for (const list of Object.values(networkInterfaces()))
      for (const i of list ?? []) names.add(i.address.replace(/%.*$/, ''));
  } else names.add(listen);
  if (wildcard || listen === 'localhost' || listen.startsWith('127.') || listen === '::1')
    for (const n of ['localhost', '127.0.0.1', '::1']) names.add(n);
  for (const a of advertise) names.add(a);
  return [...names];
}
