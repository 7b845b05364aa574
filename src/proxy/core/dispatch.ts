/**
 * The one dispatch interface every layer of the proxy is built on.
 *
 * As in tower: a {@link Service} is an async function from request to response, a
 * {@link Layer} wraps a service into another. Layers are composed once, when config
 * changes, never per request ("layers added first see the request first").
 *
 * Bodies stream: `body` is a Node Readable (or null when there is none); nothing in
 * the stack buffers a whole body, except the retry layer, which keeps at most 64 KiB.
 */
import type { Readable } from 'node:stream';
import type { CancelSignal } from './cancel.ts';

/** Header names are lower-case; pseudo-headers and hop-by-hop headers are never present. */
export type HeaderMap = Record<string, string | string[] | undefined>;

export type Protocol = 'http1' | 'http2';
export type Direction = 'inbound' | 'outbound';

/** Per-request state that layers read and write. One object per request, created by the listener. */
export interface RequestContext {
  /** performance.now() when the request arrived at the proxy. */
  readonly start: number;
  readonly direction: Direction;
  /** Remote address of the downstream peer (the app on outbound, the peer sidecar on inbound). */
  readonly srcAddress: string;
  /** Aborted when the downstream goes away; layers that start work must stop on it. */
  readonly signal: CancelSignal;
  /** Calling service (known on outbound; from the peer's identity or header on inbound). */
  srcService: string;
  /** Destination service name (outbound: from Host/:authority; inbound: this proxy's service). */
  dstService: string;
  /** Route label for metrics: `<namespace>/<route-name>` or `default`. Bounded cardinality. */
  route: string;
  /** Absolute deadline (performance.now() ms) for the whole request incl. retries; Infinity if none. */
  deadline: number;
  /**
   * Abort signal of the current try, set by the timeout and retry layers (absent when no such
   * layer runs). It follows `signal` (downstream gone) and is also aborted when this try is
   * abandoned: request or per-try timeout (`reason` is then the HexmeshError timeout), or a
   * response discarded for a retry. Transports and pools must honour it: use
   * `ctx.trySignal ?? ctx.signal` for connecting, sending and streaming the response.
   */
  trySignal?: CancelSignal;
  /** Try number, 0 for the first try; set by the retry layer. */
  attempt: number;
  /** Endpoint chosen for the current try (`host:port`), set by the balancer layer. */
  endpoint: string;
  /** Peer identity once mTLS lands (`spiffe://...`); empty when plaintext. */
  peerIdentity: string;
  tls: boolean;
  /**
   * Header-name spelling between HTTP/1 peers (core/headers.ts): the request's names that
   * were not lower-case, set by the HTTP/1 listener, and the response's, set by the HTTP/1
   * transport. Fields of the context rather than WeakMap entries keyed by it: a WeakMap write
   * per request costs an ephemeron barrier and GC work (issue 11).
   */
  requestNames?: ReadonlyMap<string, string>;
  responseNames?: ReadonlyMap<string, string>;
  /** Free-form per-feature annotations (e.g. `retries`, `fallback`), read by telemetry. */
  notes: Record<string, string | number | boolean>;
}

export interface MeshRequest {
  method: string;
  /** `host[:port]` from Host or :authority. */
  authority: string;
  /** Path and query exactly as received (`/a/b?x=1`). */
  path: string;
  headers: HeaderMap;
  /** Request body stream, or null for none. Consumed at most once unless a layer replays it. */
  body: Readable | null;
  /** Protocol the request arrived in from the downstream. */
  protocol: Protocol;
  /** True for `content-type: application/grpc*` requests. */
  grpc: boolean;
  ctx: RequestContext;
}

export interface MeshResponse {
  status: number;
  headers: HeaderMap;
  body: Readable | null;
  /**
   * Trailers, filled in by the producer before `body` emits 'end' (gRPC status lives here).
   * Consumers read it after the body ended.
   */
  trailers?: HeaderMap;
  /** Set when the proxy made this response up itself (the `x-hexmesh-error` code). */
  synthetic?: string;
}

export type Service = (req: MeshRequest) => Promise<MeshResponse>;
export type Layer = (next: Service) => Service;

/** Compose layers over a terminal service; the first layer sees the request first. */
export function compose(layers: readonly Layer[], terminal: Service): Service {
  let svc = terminal;
  for (let i = layers.length - 1; i >= 0; i--) svc = layers[i](svc);
  return svc;
}

/** Read a single header value (first of a list). */
export function header(h: HeaderMap, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}
