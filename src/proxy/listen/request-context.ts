/** Creation of the per-request context, shared by the HTTP/1 and HTTP/2 adapters. */
import { performance } from 'node:perf_hooks';
import type { CancelSignal } from '../core/cancel.ts';
import type { Direction, RequestContext } from '../core/dispatch.ts';

export interface ListenerIdentity {
  direction: Direction;
  /** This proxy's service (src on outbound, dst on inbound). */
  service: string;
}

/**
 * Set by mTLS (transport/mtls.ts) on a decrypted inbound socket: the peer's verified SPIFFE ID.
 * A property, not a WeakMap entry, so it reads through the socket proxy of an HTTP/2 session.
 */
export const PEER_IDENTITY: unique symbol = Symbol('hexmesh.peerIdentity');

/**
 * Set by the proxy on a socket that transparent capture redirected: where it was going
 * (SO_ORIGINAL_DST). Read into the request's `notes.originalHost` / `notes.originalPort`:
 * inbound, where the app is reached (inbound-stack.ts); outbound, where a request for no
 * mesh service passes through to (proxy.ts).
 */
export const ORIGINAL_DST: unique symbol = Symbol('hexmesh.originalDst');

/** `socket`: the connection the request came on; its mTLS peer identity fills `peerIdentity`/`tls`. */
export function newContext(
  id: ListenerIdentity,
  srcAddress: string,
  signal: CancelSignal,
  socket?: object | null,
): RequestContext {
  const outbound = id.direction === 'outbound';
  const peer = socket ? (socket as { [PEER_IDENTITY]?: string })[PEER_IDENTITY] : undefined;
  const od = socket
    ? (socket as { [ORIGINAL_DST]?: { host: string; port: number } })[ORIGINAL_DST]
    : undefined;
  return {
    start: performance.now(),
    direction: id.direction,
    srcAddress,
    signal,
    srcService: outbound ? id.service : 'unknown',
    dstService: outbound ? 'unknown' : id.service,
    route: 'default',
    deadline: Infinity,
    attempt: 0,
    endpoint: '',
    peerIdentity: peer ?? '',
    tls: peer !== undefined,
    requestNames: undefined,
    responseNames: undefined,
    notes: od ? { originalHost: od.host, originalPort: od.port } : {},
  };
}

/** gRPC is recognised by content type (`application/grpc`, `application/grpc+proto`, ...). */
export function isGrpc(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}
