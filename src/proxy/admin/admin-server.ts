/**
 * The proxy's admin listener: metrics, health probes, config dump, shutdown. It is
 * the only listener that binds here, on its own port (default loopback), so that
 * probes and scrapes never share a queue with mesh traffic. Endpoints are
 * documented in docs/admin.md.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { ProxyMetrics } from '../../telemetry/metrics.ts';
import { serveTap } from '../../telemetry/tap/tap-endpoint.ts';
import type { TapHub } from '../../telemetry/tap/tap-hub.ts';
import { redact } from '../../util/redact.ts';
import { ADMIN_HEADER, changesState, fromAnotherSite, hasAdminHeader, hostChecker } from './admin-guard.ts';

export interface AdminServerOptions {
  /** Address to bind, e.g. `127.0.0.1` (the admin port is not for the network at large). */
  address: string;
  /** Port; 0 picks a free one (see the result of `listen()`). */
  port: number;
  metrics: ProxyMetrics;
  /** True once the proxy can take traffic (config loaded, listeners bound, not draining). */
  isReady(): boolean;
  /** Why the proxy is not ready, shown in the 503 body (default `not ready`). */
  notReadyReason?(): string;
  /** A note on a ready proxy, shown in the 200 body (`ready (running from cache: ...)`). */
  readyNote?(): string | undefined;
  /** The configuration in force, served as JSON by `/config` with credentials redacted. */
  configDump(): unknown;
  /** Called once, after the 202 of the first `POST /shutdown` was sent. */
  onShutdown(): void;
  /** Live tap viewers (`GET /tap`, docs/observability.md); absent: no `/tap`. */
  tap?: TapHub;
  /** Destinations and endpoint state for `GET /endpoints`; absent: no `/endpoints`. */
  endpointsDump?(): unknown;
  /** Time a client has to send a request's headers, idle new connections included (default 10 s; 408 beyond). */
  headersTimeoutMs?: number;
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

interface Endpoint {
  methods: readonly string[];
  handle(res: ServerResponse, query: URLSearchParams): void | Promise<void>;
}

/** The admin HTTP listener. */
export class AdminServer {
  private readonly server: Server;
  private readonly endpoints: Map<string, Endpoint>;
  private shutdownCalled = false;
  private closing: Promise<void> | undefined;
  /** Accepts the Host values that name this listener (set once bound: the port may be 0 before). */
  private hostOk: (host: string | undefined) => boolean = () => false;

  constructor(private readonly opts: AdminServerOptions) {
    this.endpoints = new Map<string, Endpoint>([
      ['/metrics', { methods: ['GET', 'HEAD'], handle: (res) => this.metrics(res) }],
      ['/ready', { methods: ['GET', 'HEAD'], handle: (res) => this.ready(res) }],
      ['/live', { methods: ['GET', 'HEAD'], handle: (res) => send(res, 200, TEXT, 'live\n') }],
      ['/config', { methods: ['GET', 'HEAD'], handle: (res) => this.config(res) }],
      ['/shutdown', { methods: ['POST'], handle: (res) => this.shutdown(res) }],
    ]);
    const tap = opts.tap;
    if (tap) this.endpoints.set('/tap', { methods: ['GET'], handle: (res, q) => serveTap(tap, q, res) });
    const dump = opts.endpointsDump;
    if (dump)
      this.endpoints.set('/endpoints', {
        methods: ['GET', 'HEAD'],
        handle: (res) => send(res, 200, JSON_TYPE, `${JSON.stringify(dump(), null, 2)}\n`),
      });
    const headersTimeout = opts.headersTimeoutMs ?? 10_000;
    // Node's defaults (60 s, checked every 30 s) let a slow or silent client hold a socket,
    // and a file descriptor the data plane shares, for up to 90 s.
    this.server = createServer(
      {
        headersTimeout,
        requestTimeout: headersTimeout,
        connectionsCheckingInterval: Math.min(1000, headersTimeout),
      },
      (req, res) => this.route(req, res),
    );
    // Scrapers and probes reconnect often; do not keep idle sockets for long.
    this.server.keepAliveTimeout = 5000;
  }

  /** Bind; resolves with the bound port (useful with port 0). */
  listen(): Promise<{ port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new HexmeshError(
            'HEXMESH_ERR_LISTEN',
            `admin listener ${this.opts.address}:${this.opts.port}: ${err.message}`,
            {
              cause: err,
              context: { address: this.opts.address, port: this.opts.port },
            },
          ),
        );
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.address, () => {
        this.server.off('error', onError);
        const port = (this.server.address() as AddressInfo).port;
        this.hostOk = hostChecker(this.opts.address, port);
        resolve({ port });
      });
    });
  }

  /** Stop listening and drop open connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    // DNS rebinding: a page whose own name now points at 127.0.0.1 sends its name as Host.
    if (!this.hostOk(req.headers.host))
      return send(
        res,
        421,
        TEXT,
        `admin listener: Host ${JSON.stringify(req.headers.host ?? '')} is not this listener; use 127.0.0.1, localhost or [::1] with its port (DNS-rebinding protection, docs/admin.md)\n`,
      );
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (fromAnotherSite(req.headers['sec-fetch-site']))
      return send(
        res,
        403,
        TEXT,
        `admin listener: ${path} requested by another site's page (Sec-Fetch-Site: ${String(req.headers['sec-fetch-site'])}); refused (cross-site protection, docs/admin.md)\n`,
      );
    const endpoint = this.endpoints.get(path);
    if (endpoint === undefined) return send(res, 404, TEXT, `no admin endpoint ${path}\n`);
    const method = req.method ?? 'GET';
    if (!endpoint.methods.includes(method)) {
      res.setHeader('allow', endpoint.methods.join(', '));
      return send(res, 405, TEXT, `${method} not allowed on ${path}; use ${endpoint.methods.join(' or ')}\n`);
    }
    // A page may send a simple cross-origin POST without a preflight, never a custom header.
    if (changesState(method) && !hasAdminHeader(req.headers[ADMIN_HEADER]))
      return send(
        res,
        403,
        TEXT,
        `${method} ${path} changes state: send the header ${ADMIN_HEADER}: 1 (cross-site protection, docs/admin.md)\n`,
      );
    // Admin requests carry no body we need; drain whatever was sent so the socket can be reused.
    req.resume();
    Promise.resolve()
      .then(() => endpoint.handle(res, new URLSearchParams(q === -1 ? '' : url.slice(q + 1))))
      .catch((err: unknown) => {
        if (!res.headersSent)
          send(res, 500, TEXT, `admin ${path} failed: ${(err as Error)?.message ?? err}\n`);
        else res.destroy();
      });
  }

  private async metrics(res: ServerResponse): Promise<void> {
    const text = await this.opts.metrics.scrape();
    send(res, 200, this.opts.metrics.contentType, text);
  }

  private ready(res: ServerResponse): void {
    if (this.opts.isReady()) {
      const note = this.opts.readyNote?.();
      return send(res, 200, TEXT, note ? `ready (${note})\n` : 'ready\n');
    }
    const reason = this.opts.notReadyReason?.() ?? 'not ready';
    send(res, 503, TEXT, `${reason}\n`);
  }

  private config(res: ServerResponse): void {
    // Any process on the host may read this, the app included: not the credentials its
    // sidecar adds for it (as Envoy's config dump redacts secrets).
    const json = JSON.stringify(redact(this.opts.configDump() ?? null), null, 2);
    send(res, 200, 'application/json; charset=utf-8', `${json}\n`);
  }

  private runShutdown(): void {
    try {
      this.opts.onShutdown();
    } catch (err) {
      // The 202 is already sent; a throwing callback must not crash the proxy from an event handler.
      process.emitWarning(`admin /shutdown callback threw: ${(err as Error)?.message ?? err}`);
    }
  }

  private shutdown(res: ServerResponse): void {
    const first = !this.shutdownCalled;
    this.shutdownCalled = true;
    // Answer first: the callback may close this very listener.
    if (first) res.once('finish', () => this.runShutdown());
    send(res, 202, TEXT, first ? 'shutting down\n' : 'already shutting down\n');
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
