/**
 * The sidecar proxy: outbound listener (app → mesh), inbound listener (mesh → app),
 * per-upstream local ports, and the admin listener. Holds the config in force and swaps
 * in new chains when a new snapshot arrives; a snapshot that fails to build is refused
 * and the last good one keeps serving.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { ProxyConfig } from '../config/proxy-config.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { IdentitySource } from '../identity/identity-source.ts';
import { AccessLog } from '../telemetry/access-log.ts';
import { ProxyMetrics } from '../telemetry/metrics.ts';
import { telemetryLayer } from '../telemetry/telemetry-layer.ts';
import { TapHub } from '../telemetry/tap/tap-hub.ts';
import { Tracing } from '../telemetry/tracing/tracer.ts';
import { tracingLayer } from '../telemetry/tracing/tracing-layer.ts';
import { grpcTimeoutLayer } from './timeout/grpc-timeout.ts';
import { dumpEndpoints } from './admin/endpoints-dump.ts';
import { AdminServer } from './admin/admin-server.ts';
import { end, start } from './balance/endpoint-state.ts';
import type { MeshRequest, MeshResponse, Service } from './core/dispatch.ts';
import { buildSecurityLayers, securityGate } from './authz/security-stack.ts';
import { buildConnectionGate, type ConnectionGate } from './authz/connection-gate.ts';
import { toHexmeshError } from './core/error-response.ts';
import { buildInbound } from './inbound/inbound-stack.ts';
import { detect, TUNNEL_HEADER_LENGTH, tunnelHeader } from './listen/detect.ts';
import { H2Server } from './listen/h2-server.ts';
import { Http1Server } from './listen/http1-server.ts';
import { MeshListener, type ConnectionHandlers } from './listen/mesh-listener.ts';
import { ConnectionLimiter, type ConnectionLimits } from './listen/connection-limit.ts';
import { CLIENT_HEADER, serviceKey } from './outbound/destination.ts';
import { parseAuthority } from './route/authority.ts';
import {
  buildOutbound,
  type OutboundStack,
  type UnknownAuthorityHandler,
} from './outbound/outbound-stack.ts';
import { PLAINTEXT, type HopSecurity, type PeerInfo } from './transport/hop-security.ts';
import { ALPN_TUNNEL, inboundTlsMode, MeshTls } from './transport/mtls.ts';
import { originalDestination, type OriginalDestination } from './capture/original-destination.ts';
import { ORIGINAL_DST, PEER_IDENTITY } from './listen/request-context.ts';
import { ClientClosedError, forwardTcp } from './transport/tcp-forward.ts';
import { TransportPool, type TransportSettings } from './transport/transport-pool.ts';
import { failUpgrade, proxyUpgrade } from './transport/upgrade.ts';

/** Defaults of semantics.md (connect 5 s, upstream idle 1 h, stream idle 5 min). */
const TRANSPORT_DEFAULTS: TransportSettings = Object.freeze({
  connectTimeout: 5000,
  idleTimeout: 3_600_000,
  streamIdleTimeout: 300_000,
  maxConnections: 1024,
  security: PLAINTEXT,
});
const TCP_IDLE = 3_600_000;

export interface ProxyAddresses {
  outbound: net.AddressInfo;
  inbound: net.AddressInfo;
  admin: { port: number };
  upstreams: Record<string, net.AddressInfo>;
}

interface HttpPair {
  h1: Http1Server;
  h2: H2Server;
}

export class Proxy {
  readonly metrics: ProxyMetrics;
  /** Mutual TLS between sidecars: plaintext until an identity is set (`setIdentity`). */
  readonly mtls: MeshTls;
  /** Transport settings of the outbound side (TRANSPORT_DEFAULTS with mTLS as the security). */
  readonly #transport: TransportSettings;
  /** Live tap viewers of the admin `/tap` endpoint. */
  readonly tap = new TapHub();
  /** The tracer in force (`proxy.tracing`), swapped by `apply()`. */
  readonly tracing: Tracing;
  #config: ProxyConfig;
  #outbound: OutboundStack | undefined;
  readonly #appTransports: TransportPool;
  /** Transparent capture: HTTP to an address that is no mesh service (ALLOW_ANY), plaintext. */
  readonly #passthroughTransports = new TransportPool({ ...TRANSPORT_DEFAULTS, idleTimeout: 300_000 });
  readonly #accessLog: AccessLog | undefined;
  readonly #telemetry: ReturnType<typeof telemetryLayer>;
  /** Authn/authz for inbound WebSocket upgrades, which bypass the inbound service. */
  #inboundGate: (req: MeshRequest) => Promise<void> = () => Promise.resolve();
  /** L4 authorization for connections forwarded to the app as opaque bytes. */
  #connectionGate: ConnectionGate = () => true;
  readonly #listeners: MeshListener[] = [];
  /** Client connections: total and per client, over every listener. */
  readonly #connections: ConnectionLimiter;
  readonly #http: HttpPair[] = [];
  #outboundHttp: HttpPair | undefined;
  #inboundHttp: HttpPair | undefined;
  #upstreamHttp = new Map<string, HttpPair>();
  #admin: AdminServer | undefined;
  #ready = false;
  #draining: Promise<void> | undefined;
  #onExit: (() => void) | undefined;
  /** Control-plane mode: not ready until the first snapshot was applied. */
  #awaitingConfig: boolean;
  /** The last snapshot refused since the last one applied: shown by the admin `/config`. */
  #rejected: { version: number; error: string } | undefined;
  #lazy: UnknownAuthorityHandler | undefined;

  /**
   * `onUnknownDestination` (control-plane mode): asked for an authority the config does not
   * know; it subscribes and resolves true once a config naming it was applied, false if the
   * destination does not exist (the request then fails with unknown-service as before).
   * `awaitConfig`: /ready answers 503 until the first `apply()`.
   */
  constructor(
    config: ProxyConfig,
    opts: {
      onExit?: () => void;
      onUnknownDestination?: (authority: string) => Promise<boolean>;
      awaitConfig?: boolean;
      /** Workload identity for mTLS (proxy.tls files, or the control plane); see setIdentity. */
      identity?: IdentitySource;
    } = {},
  ) {
    this.#config = config;
    this.#onExit = opts.onExit;
    this.#awaitingConfig = opts.awaitConfig ?? false;
    const ask = opts.onUnknownDestination;
    if (ask)
      this.#lazy = async (req, err) => {
        // Once per request: a destination still unknown after the answer fails as before.
        if (req.ctx.notes.lazyDiscovery) throw err;
        req.ctx.notes.lazyDiscovery = true;
        if (!(await ask(req.authority)) || !this.#outbound) throw err;
        return this.#outbound.service(req);
      };
    this.metrics = new ProxyMetrics({ service: config.proxy.service, namespace: config.proxy.namespace });
    const log = config.proxy.accessLog;
    this.#accessLog = log ? new AccessLog({ destination: log }) : undefined;
    this.tracing = new Tracing(config.proxy.service, config.proxy.namespace);
    this.tracing.configure(config.proxy.tracing);
    // Telemetry outermost, tracing right inside it: both see every request.
    const telemetry = telemetryLayer(this.metrics, this.#accessLog, { tap: this.tap });
    const tracing = tracingLayer(this.tracing);
    // The caller's gRPC deadline runs from arrival, inside telemetry so its answer is counted.
    const grpcTimeout = grpcTimeoutLayer();
    this.#telemetry = (svc) => telemetry(tracing(grpcTimeout(svc)));
    this.#appTransports = new TransportPool({ ...TRANSPORT_DEFAULTS, idleTimeout: 300_000 });
    this.mtls = new MeshTls({ registry: this.metrics.registry });
    this.#connections = new ConnectionLimiter(connectionLimits(config), { registry: this.metrics.registry });
    this.#transport = Object.freeze({ ...TRANSPORT_DEFAULTS, security: this.mtls });
    this.#applyTlsMode(config);
    if (opts.identity) this.setIdentity(opts.identity);
  }

  /**
   * Use this workload identity for mTLS (or none: plaintext). Outbound hops to meshed
   * endpoints switch to TLS on their next request; the inbound listener terminates TLS.
   * The source's later changes (renewal, bundle rotation) apply to new handshakes.
   */
  setIdentity(source: IdentitySource | undefined): void {
    this.mtls.setSource(source);
  }

  #applyTlsMode(config: ProxyConfig): void {
    const p = config.proxy;
    this.mtls.mode = inboundTlsMode(config.resources, p.service, p.namespace, p.tls?.mode);
    this.mtls.federatedTrustDomains = new Set(p.federatedTrustDomains);
  }

  get config(): ProxyConfig {
    return this.#config;
  }

  get ready(): boolean {
    return this.#ready && !this.#draining && !this.#awaitingConfig;
  }

  /** Shown by a ready `/ready` (control-plane mode: `running from cache: ...`). */
  readyNote: string | undefined;

  /** Build the stacks, bind every listener, then report ready. */
  async start(): Promise<ProxyAddresses> {
    try {
      return await this.#bind();
    } catch (err) {
      // A listener that could not bind (port in use) must not leave the others open: the
      // process would stay up, half-started, instead of exiting with the error.
      this.destroy();
      throw err;
    }
  }

  async #bind(): Promise<ProxyAddresses> {
    const c = this.#config.proxy;
    // proxy.tracing loads OpenTelemetry on demand: in force before the first request.
    await this.tracing.ready;
    this.#outbound = buildOutbound(this.#config, undefined, this.metrics, this.#transport, this.#lazy);
    this.#outbound.commit();
    this.metrics.setConfigVersion(this.#config.version);
    this.#admin = new AdminServer({
      address: c.admin.address,
      port: c.admin.port,
      metrics: this.metrics,
      isReady: () => this.ready,
      readyNote: () => this.readyNote,
      notReadyReason: () =>
        this.#draining
          ? 'draining'
          : this.#awaitingConfig && this.#ready
            ? 'waiting for the first config from the control plane'
            : 'starting: listeners not bound yet',
      // A refusal stays visible here until a good version replaces it (issue 10).
      configDump: () => (this.#rejected ? { ...this.#config, rejected: this.#rejected } : this.#config),
      tap: this.tap,
      endpointsDump: () => ({
        version: this.#config.version,
        destinations: dumpEndpoints(this.#outbound?.destinations.values() ?? []),
      }),
      onShutdown: () => void this.shutdown(),
    });
    const admin = await this.#admin.listen();

    const outboundService = this.#telemetry((req) =>
      c.capture
        ? this.#outbound!.service(req).catch((err: unknown) => this.#passthroughHttp(req, err))
        : this.#outbound!.service(req),
    );
    this.#outboundHttp = this.#httpPair('outbound', outboundService, (req, socket, head) =>
      this.#upgradeOutbound(req, socket, head),
    );
    // The outbound listener speaks HTTP only: bytes that are not HTTP (or nothing within the
    // detection timeout) go to the HTTP/1 parser too, which answers 400 naming the problem
    // (or 408 after headerTimeout) instead of a silent reset.
    const outboundH1 = (s: net.Socket, h: Buffer) => this.#outboundHttp!.h1.accept(s, h);
    const outboundHandlers: ConnectionHandlers = {
      http1: outboundH1,
      http2: (s, h) => this.#outboundHttp!.h2.accept(s, h),
      tcp: outboundH1,
    };
    const outbound = this.#listen(
      'outbound',
      c.outbound.address,
      c.outbound.port,
      false,
      c.capture ? this.#capturedOutbound(outboundHandlers) : outboundHandlers,
      c.capture ? (s) => this.#capturedOpaque(s) : undefined,
    );

    const security = buildSecurityLayers(this.#config, { metrics: this.metrics });
    this.#inboundGate = securityGate(security);
    this.#connectionGate = buildConnectionGate(this.#config, this.metrics);
    const inboundService = this.#telemetry(
      buildInbound(this.#config, this.#appTransports, { layers: security }),
    );
    this.#inboundHttp = this.#httpPair('inbound', inboundService, (req, socket, head) =>
      this.#upgradeInbound(req, socket, head),
    );
    const app = c.app;
    const appOpaque = app?.protocol === 'tcp' || app?.protocol === 'opaque';
    const toApp = (s: net.Socket, preamble: Buffer) => {
      // Raw bytes pass no HTTP layer: L4 authorization decides the whole connection.
      if (!app || !this.#connectionGate(s)) return s.destroy();
      const m = this.metrics.tcpConnection('inbound', c.service);
      const to = (s as { [ORIGINAL_DST]?: { host: string; port: number } })[ORIGINAL_DST];
      forwardTcp(s, {
        host: to?.host ?? app.host,
        port: to?.port ?? app.port,
        connectTimeout: TRANSPORT_DEFAULTS.connectTimeout,
        idleTimeout: TCP_IDLE,
        preamble,
        onBytes: (r, w) => {
          m.read(r);
          m.written(w);
          m.close();
        },
      }).catch(() => {});
    };
    const inboundH1 = appOpaque
      ? (s: net.Socket, h: Buffer) => toApp(s, h)
      : (s: net.Socket, h: Buffer) => this.#inboundHttp!.h1.accept(s, h);
    const inboundOpaque = c.opaquePorts.includes(c.inbound.port);
    const inboundHandlers: ConnectionHandlers = {
      http1: inboundH1,
      http2: appOpaque ? (s, h) => toApp(s, h) : (s, h) => this.#inboundHttp!.h2.accept(s, h),
      // A tunnel carries opaque bytes, so it may reach only an app declared tcp/opaque: to an
      // HTTP app it would carry requests past every HTTP layer (authorization included).
      tunnel: appOpaque ? (s, h) => toApp(s, h.subarray(TUNNEL_HEADER_LENGTH)) : (s) => s.destroy(),
      // An HTTP app gets only parsed HTTP: undetected bytes (garbage, a request after a
      // leading CRLF, a silent client) go to the HTTP/1 parser rather than raw to the app,
      // where they would bypass every inbound layer. A declared opaque port skips all that.
      tcp: inboundOpaque ? (s, h) => toApp(s, h) : inboundH1,
    };
    // mTLS: the decrypted stream is detected again and handled like plaintext; plaintext
    // itself passes only in PERMISSIVE mode (STRICT closes it, counted).
    this.mtls.onSecureConnection((s) => {
      const peer = (s as { [PEER_IDENTITY]?: string })[PEER_IDENTITY];
      if (peer !== undefined && !this.#connections.admitIdentity(s, peer, 'inbound')) return void s.destroy();
      this.#acceptDecrypted(s, inboundHandlers).catch(() => s.destroy());
    });
    const admit =
      (h: (s: net.Socket, head: Buffer) => void) =>
      (s: net.Socket, head: Buffer): void => {
        if (!this.mtls.admitPlaintext(s)) return;
        this.#markCapturedInbound(s);
        h(s, head);
      };
    // Not ready (control-plane mode, no config yet): a peer's connection is reset, which its
    // retry layer retries on another endpoint and its outlier detection counts, instead of
    // being forwarded to an app that is not started yet (issue 10).
    const gate = (hs: ConnectionHandlers): ConnectionHandlers => {
      const out: ConnectionHandlers = {};
      for (const k of Object.keys(hs) as (keyof ConnectionHandlers)[]) {
        const h = hs[k];
        if (h) out[k] = (s, head) => (this.#awaitingConfig ? s.resetAndDestroy() : h(s, head));
      }
      return out;
    };
    const inbound = this.#listen(
      'inbound',
      c.inbound.address,
      c.inbound.port,
      inboundOpaque,
      gate(
        inboundOpaque
          ? inboundHandlers
          : {
              http1: admit(inboundHandlers.http1!),
              http2: admit(inboundHandlers.http2!),
              tunnel: admit(inboundHandlers.tunnel!),
              tcp: admit(inboundHandlers.tcp!),
              // Without an identity a ClientHello is opaque bytes, as before mTLS.
              tls: (s, h) => (this.mtls.enabled ? this.mtls.accept(s, h) : admit(inboundHandlers.tcp!)(s, h)),
            },
      ),
    );

    const upstreams: Record<string, Promise<net.AddressInfo>> = {};
    for (const u of c.upstreams)
      upstreams[u.service] = this.#listenUpstream(u.service, u.address, u.localPort);

    // One Promise.all over every listener, so a failed bind never leaves a rejection unhandled.
    const names = Object.keys(upstreams);
    const [ob, ib, ...bound] = await Promise.all([outbound, inbound, ...names.map((n) => upstreams[n])]);
    const ups: Record<string, net.AddressInfo> = {};
    names.forEach((n, i) => (ups[n] = bound[i]));
    this.#ready = true;
    return { outbound: ob, inbound: ib, admin, upstreams: ups };
  }

  /** The last snapshot refused since one was applied (undefined once a good version is in force). */
  get rejected(): { version: number; error: string } | undefined {
    return this.#rejected;
  }

  /**
   * Record a snapshot refused before it reached `apply` (the control client found it invalid):
   * shown like `apply`'s own refusals until a good version is in force.
   */
  noteRejected(version: number, error: string): void {
    this.#rejected = { version, error };
  }

  /**
   * Apply a new snapshot, all or nothing. Builds every chain first (destinations prepare their
   * updates without changing); if anything fails the error is thrown, what was prepared is
   * dropped and the running config is untouched, so the same snapshot is refused again next
   * time. Listener addresses are fixed at start.
   */
  apply(next: ProxyConfig): void {
    let outbound: OutboundStack | undefined;
    let inbound: Service;
    let gate: (req: MeshRequest) => Promise<void>;
    let connectionGate: ConnectionGate;
    try {
      outbound = buildOutbound(next, this.#outbound?.destinations, this.metrics, this.#transport, this.#lazy);
      const security = buildSecurityLayers(next, { metrics: this.metrics });
      gate = securityGate(security);
      connectionGate = buildConnectionGate(next, this.metrics);
      inbound = this.#telemetry(buildInbound(next, this.#appTransports, { layers: security }));
    } catch (err) {
      outbound?.abort();
      this.metrics.recordConfigRejection();
      this.#rejected = { version: next.version, error: (err as Error).message ?? String(err) };
      throw err;
    }
    outbound.commit();
    this.#rejected = undefined;
    this.#config = next;
    this.#applyTlsMode(next);
    this.#connections.setLimits(connectionLimits(next));
    this.#outbound = outbound;
    this.#inboundGate = gate;
    this.#connectionGate = connectionGate;
    this.#inboundHttp?.h1.setService(inbound);
    this.#inboundHttp?.h2.setService(inbound);
    for (const [name, pair] of this.#upstreamHttp) {
      const svc = this.#upstreamService(name);
      pair.h1.setService(svc);
      pair.h2.setService(svc);
    }
    this.metrics.setConfigVersion(next.version);
    this.tracing.configure(next.proxy.tracing);
    this.#awaitingConfig = false;
  }

  #httpPair(
    direction: 'inbound' | 'outbound',
    service: Service,
    onUpgrade: (req: MeshRequest, s: Duplex, h: Buffer) => void,
  ): HttpPair {
    const c = this.#config.proxy;
    const id = { direction, service: c.service };
    const pair = {
      h1: new Http1Server(
        id,
        service,
        { maxHeaderSize: c.maxHeaderSize, headerTimeout: c.headerTimeout, idleTimeout: c.idleTimeout },
        onUpgrade,
      ),
      h2: new H2Server(id, service, {
        maxHeaderSize: c.maxHeaderSize,
        idleTimeout: c.idleTimeout,
        maxConcurrentStreams: c.maxConcurrentStreams,
      }),
    };
    this.#http.push(pair);
    return pair;
  }

  #listen(
    name: string,
    address: string,
    port: number,
    opaque: boolean,
    handlers: ConnectionHandlers,
    opaqueWhen?: (socket: net.Socket) => boolean,
  ): Promise<net.AddressInfo> {
    const l = new MeshListener(
      {
        name,
        address,
        port,
        opaque,
        ...(opaqueWhen ? { opaqueWhen } : {}),
        detectTimeout: this.#config.proxy.detectTimeout,
        limiter: this.#connections,
      },
      handlers,
    );
    this.#listeners.push(l);
    return l.listen();
  }

  #upstreamService(name: string): Service {
    const svc = this.#outbound?.serviceFor(name);
    const fixed: Service =
      svc ??
      (() =>
        Promise.reject(
          new HexmeshError(
            'HEXMESH_ERR_UNKNOWN_SERVICE',
            `upstream ${name} is not in the mesh configuration`,
          ),
        ));
    return this.#telemetry((req) => (this.#outbound?.serviceFor(name) ?? fixed)(req));
  }

  /** A per-upstream local port: HTTP is routed to the fixed service, anything else is tunnelled. */
  #listenUpstream(name: string, address: string, port: number): Promise<net.AddressInfo> {
    const svc = this.#config.services.find((s) => s.name === name);
    const opaque = svc?.ports.some((p) => p.protocol === 'tcp' || p.protocol === 'opaque') ?? false;
    const pair = this.#httpPair('outbound', this.#upstreamService(name), (req, s, h) => {
      req.ctx.dstService = name;
      this.#upgradeTo(name, req, s, h);
    });
    this.#upstreamHttp.set(name, pair);
    const tunnel = (s: net.Socket, head: Buffer) => {
      this.#tunnel(name, s, head).catch(() => s.destroy());
    };
    return this.#listen(`upstream ${name}`, address, port, opaque, {
      http1: (s, h) => pair.h1.accept(s, h),
      http2: (s, h) => pair.h2.accept(s, h),
      tunnel,
      tcp: tunnel,
      // An app's own TLS (to a database, say) is opaque bytes here.
      tls: tunnel,
    });
  }

  /**
   * Opaque TCP to a destination: per-connection balancing, tunnel header for meshed endpoints.
   * `port`: the service port the client asked for (a captured connection's original port).
   */
  async #tunnel(
    name: string,
    client: net.Socket,
    head: Buffer,
    port = svcPort(this.#config, name),
  ): Promise<void> {
    const dst = this.#outbound?.destination(name);
    const ep = dst?.balancer.pick({ hashKey: dst.hashKey({}, client.remoteAddress ?? '') });
    if (!dst || !ep) {
      client.destroy();
      return;
    }
    const m = this.metrics.tcpConnection('outbound', dst.name);
    const sec = this.#hopSecurity(dst.peerOf(ep.key));
    start(ep);
    try {
      await forwardTcp(client, {
        host: ep.address,
        port: ep.port,
        ...(sec ? { tls: { ...sec.connectOptions(ep.address), ALPNProtocols: [ALPN_TUNNEL] } } : {}),
        connectTimeout: TRANSPORT_DEFAULTS.connectTimeout,
        idleTimeout: dst.policy?.timeouts?.tcpIdle ?? TCP_IDLE,
        preamble: ep.meshed ? Buffer.concat([tunnelHeader(port), head]) : head,
        onBytes: (r, w) => {
          m.read(r);
          m.written(w);
          m.close();
          end(ep);
        },
      });
      dst.outlier?.record(ep, 'success');
    } catch (err) {
      // A client that left before the connect finished says nothing about the endpoint.
      if (!(err instanceof ClientClosedError)) dst.outlier?.record(ep, 'gateway-error');
    }
  }

  /**
   * Transparent capture on the outbound listener: a connection the capture rules redirected
   * here goes where the app sent it. To a mesh service's address (cluster IP, or one of its
   * endpoints): HTTP is routed as always — by its Host, which may be that address
   * (outbound-stack.ts) — and other bytes are tunnelled to the service, mTLS included. To any
   * other address: passed through unmeshed (ALLOW_ANY) or closed (REGISTRY_ONLY), as Istio's
   * PassthroughCluster / BlackHoleCluster. Not redirected (the app dialled the listener
   * itself): handled as without capture.
   */
  #capturedOutbound(hs: ConnectionHandlers): ConnectionHandlers {
    const route =
      (kind: 'http1' | 'http2' | 'tcp') =>
      (s: net.Socket, head: Buffer): void => {
        const od = originalDestination(s);
        if (!od) return hs[kind]!(s, head);
        if (kind !== 'tcp') {
          // HTTP names its service by Host, which this sidecar may not know yet (control-plane
          // mode learns services on first use): the HTTP path decides, and a request for no
          // mesh service passes through to `od` (#passthroughHttp).
          (s as { [ORIGINAL_DST]?: { host: string; port: number } })[ORIGINAL_DST] = {
            host: od.address,
            port: od.port,
          };
          return hs[kind]!(s, head);
        }
        const key = this.#outbound?.serviceAt(od.address, od.port);
        if (!key) return this.#passthrough(s, head, od);
        this.#tunnel(key, s, head, od.port).catch(() => s.destroy());
      };
    return { http1: route('http1'), http2: route('http2'), tcp: route('tcp') };
  }

  /**
   * An HTTP request on a captured connection that names no mesh service: under ALLOW_ANY it
   * goes, unmeshed, to where the app sent the connection (Istio's PassthroughCluster); under
   * REGISTRY_ONLY, or on a connection not captured, it fails as without capture.
   */
  #passthroughHttp(req: MeshRequest, err: unknown): Promise<MeshResponse> {
    const { originalHost: host, originalPort: port } = req.ctx.notes;
    const unknown = err instanceof HexmeshError && err.code === 'HEXMESH_ERR_UNKNOWN_SERVICE';
    if (
      !unknown ||
      typeof host !== 'string' ||
      typeof port !== 'number' ||
      this.#config.proxy.capture?.outboundTrafficPolicy === 'REGISTRY_ONLY'
    )
      return Promise.reject(err);
    const key = `${host}:${port}`;
    req.ctx.dstService = 'passthrough';
    req.ctx.endpoint = key;
    return this.#passthroughTransports.request(key, host, port, false, req);
  }

  /**
   * A captured connection to a service port declared `tcp`/`opaque`: no protocol detection,
   * so a server-first protocol (a database greeting its client) does not wait its timeout.
   */
  #capturedOpaque(s: net.Socket): boolean {
    const od = originalDestination(s);
    const key = od && this.#outbound?.serviceAt(od.address, od.port);
    if (!key) return false;
    const svc = this.#config.services.find((x) => serviceKey(x.name, x.namespace) === key);
    const p = svc?.ports.find((x) => x.port === od.port);
    return p?.protocol === 'tcp' || p?.protocol === 'opaque';
  }

  /** A captured connection to an address that is no mesh service (`proxy.capture.outboundTrafficPolicy`). */
  #passthrough(client: net.Socket, head: Buffer, od: OriginalDestination): void {
    if (this.#config.proxy.capture?.outboundTrafficPolicy === 'REGISTRY_ONLY') {
      this.metrics.tcpConnection('outbound', 'blackhole').close();
      return void client.resetAndDestroy();
    }
    const m = this.metrics.tcpConnection('outbound', 'passthrough');
    forwardTcp(client, {
      host: od.address,
      port: od.port,
      connectTimeout: TRANSPORT_DEFAULTS.connectTimeout,
      idleTimeout: TCP_IDLE,
      preamble: head,
      onBytes: (r, w) => {
        m.read(r);
        m.written(w);
        m.close();
      },
    }).catch(() => {});
  }

  /**
   * Transparent capture on the inbound listener: a redirected connection reaches the app where
   * the peer sent it (the pod's address and the original port), as Istio does since 1.10 —
   * not 127.0.0.1, so a port the app binds on loopback only stays private to the pod.
   */
  #markCapturedInbound(s: net.Socket): void {
    if (!this.#config.proxy.capture) return;
    const od = originalDestination(s);
    if (od)
      (s as { [ORIGINAL_DST]?: { host: string; port: number } })[ORIGINAL_DST] = {
        host: od.address,
        port: od.port,
      };
  }

  #upgradeOutbound(req: MeshRequest, socket: Duplex, head: Buffer): void {
    const svc = this.#outbound?.service;
    if (!svc) return void socket.destroy();
    // Resolve the destination as routing reads any Host (route/authority.ts: case, trailing
    // dot, namespace, port), then splice to one endpoint.
    const t = parseAuthority(req.authority, this.#config.proxy.namespace);
    this.#upgradeTo(t ? serviceKey(t.name, t.namespace) : req.authority, req, socket, head);
  }

  #upgradeTo(name: string, req: MeshRequest, socket: Duplex, head: Buffer): void {
    const dst = this.#outbound?.destination(name);
    if (!dst)
      return failUpgrade(
        socket,
        new HexmeshError('HEXMESH_ERR_UNKNOWN_SERVICE', `unknown service "${req.authority}"`),
      );
    const ep = dst.balancer.pick();
    if (!ep)
      return failUpgrade(
        socket,
        new HexmeshError('HEXMESH_ERR_NO_HEALTHY_ENDPOINTS', `no healthy endpoints for ${dst.name}`),
      );
    req.ctx.dstService = dst.name;
    if (ep.meshed) req.headers[CLIENT_HEADER] = req.ctx.srcService;
    else delete req.headers[CLIENT_HEADER];
    const sec = this.#hopSecurity(dst.peerOf(ep.key));
    if (sec) {
      req.ctx.tls = true;
      req.ctx.peerIdentity = sec.peerIdentity ?? '';
    }
    proxyUpgrade(
      req,
      socket,
      head,
      {
        host: ep.address,
        port: ep.port,
        connectTimeout: TRANSPORT_DEFAULTS.connectTimeout,
        idleTimeout: dst.policy?.timeouts?.tcpIdle ?? TCP_IDLE,
        ...(sec ? { tls: sec.connectOptions(ep.address) } : {}),
      },
      upgradeOf(req),
    );
  }

  /** The TLS security for an endpoint under mTLS, or undefined for plaintext. */
  #hopSecurity(peer: PeerInfo | undefined): HopSecurity | undefined {
    if (!peer) return undefined;
    const sec = this.mtls.forPeer(peer);
    return sec.scheme === 'https' ? sec : undefined;
  }

  /** A verified mTLS connection on the inbound listener: detect what it carries, then as plaintext. */
  async #acceptDecrypted(s: tls.TLSSocket, handlers: ConnectionHandlers): Promise<void> {
    s.on('error', () => {});
    this.#markCapturedInbound(s);
    const { kind, head } = await detect(s, this.#config.proxy.detectTimeout);
    if (s.destroyed) return;
    const handler = handlers[kind];
    if (!handler) return void s.destroy();
    // Node's HTTP/2 server expects sockets that close fully on FIN (its own default).
    if (kind === 'http2') s.allowHalfOpen = false;
    handler(s, head);
  }

  #upgradeInbound(req: MeshRequest, socket: Duplex, head: Buffer): void {
    const app = this.#config.proxy.app;
    if (!app) return failUpgrade(socket, new HexmeshError('HEXMESH_ERR_UNKNOWN_SERVICE', 'no local app'));
    delete req.headers[CLIENT_HEADER];
    // An upgrade is a request too: authentication and authorization decide before the splice.
    this.#inboundGate(req).then(
      () =>
        proxyUpgrade(
          req,
          socket,
          head,
          {
            host: app.host,
            port: app.port,
            connectTimeout: TRANSPORT_DEFAULTS.connectTimeout,
            idleTimeout: TCP_IDLE,
          },
          upgradeOf(req),
        ),
      (err: unknown) => failUpgrade(socket, toHexmeshError(err, req)),
    );
  }

  /**
   * Graceful drain (SIGTERM, POST /shutdown): stop accepting, tell keep-alive and HTTP/2
   * clients to go away, let in-flight requests finish within `drainTimeout`, then close all.
   */
  shutdown(): Promise<void> {
    if (this.#draining) return this.#draining;
    this.#draining = (async () => {
      const stops = this.#listeners.map((l) => l.stopAccepting());
      for (const p of this.#http) {
        p.h1.drain();
        p.h2.drain();
      }
      const deadline = Date.now() + this.#config.proxy.drainTimeout;
      while (Date.now() < deadline && this.#inflight() > 0) await sleep(50);
      await Promise.race([Promise.all(stops), sleep(100)]);
      this.destroy();
      await this.tracing.close();
      await this.#accessLog?.close();
      this.#onExit?.();
    })();
    return this.#draining;
  }

  #inflight(): number {
    let n = 0;
    for (const p of this.#http) n += p.h1.inflight + p.h2.inflight;
    return n;
  }

  /** Close everything now. */
  destroy(): void {
    this.#ready = false;
    for (const l of this.#listeners) l.destroy();
    for (const p of this.#http) {
      p.h1.close();
      p.h2.close();
    }
    for (const d of this.#outbound?.destinations.values() ?? []) d.destroy();
    this.#appTransports.destroy();
    this.#passthroughTransports.destroy();
    this.mtls.close();
    this.tap.close();
    void this.tracing.close();
    void this.#admin?.close();
    // Idempotent: shutdown() awaits the same close (flushing what was queued).
    void this.#accessLog?.close();
  }
}

function upgradeOf(req: MeshRequest): string {
  return String(req.headers['upgrade'] ?? 'websocket');
}

function svcPort(config: ProxyConfig, name: string): number {
  return config.services.find((s) => s.name === name)?.ports[0]?.port ?? 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function connectionLimits(config: ProxyConfig): ConnectionLimits {
  return {
    maxConnections: config.proxy.maxDownstreamConnections,
    maxPerClient: config.proxy.maxConnectionsPerClient,
  };
}
