/** Creation of the per-request context, shared by the HTTP/1 and HTTP/2 adapters. */
import { performance } from 'node:perf_hooks';
import type { Direction, RequestContext } from '../core/dispatch.ts';

export interface ListenerIdentity {
  direction: Direction;
  /** This proxy's service (src on outbound, dst on inbound). */
  service: string;
}

export function newContext(id: ListenerIdentity, srcAddress: string, signal: AbortSignal): RequestContext {
  const outbound = id.direction === 'outbound';
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
    peerIdentity: '',
    tls: false,
    notes: {},
  };
}

/** gRPC is recognised by content type (`application/grpc`, `application/grpc+proto`, ...). */
export function isGrpc(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}
