/**
 * Helpers for the resilience layers' tests: real MeshRequest/MeshResponse objects over real
 * streams. Not used by the proxy itself.
 */
import { Readable } from 'node:stream';
import type { HeaderMap, MeshRequest, MeshResponse } from '../core/dispatch.ts';

export interface FakeRequestInit {
  method?: string;
  body?: Readable | null;
  grpc?: boolean;
  deadline?: number;
  signal?: AbortSignal;
  dstService?: string;
}

/** A body that came whole with its head, as the HTTP/1.1 listener's (core/whole-body.ts). */
export function wholeBody(bytes: Buffer | string): Readable {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  const r = new Readable({ read() {} });
  if (buf.length > 0) r.push(buf);
  r.push(null);
  (r as Readable & { complete: boolean }).complete = true;
  return r;
}

/** A request as the listener would hand it to the stack. */
export function fakeRequest(init: FakeRequestInit = {}): MeshRequest {
  return {
    method: init.method ?? 'GET',
    authority: 'reviews:9080',
    path: '/reviews/1',
    headers: init.grpc ? { 'content-type': 'application/grpc' } : {},
    body: init.body ?? null,
    protocol: init.grpc ? 'http2' : 'http1',
    grpc: init.grpc ?? false,
    ctx: {
      start: performance.now(),
      direction: 'outbound',
      srcAddress: '127.0.0.1',
      signal: init.signal ?? new AbortController().signal,
      srcService: 'productpage',
      dstService: init.dstService ?? 'reviews',
      route: 'default',
      deadline: init.deadline ?? Infinity,
      attempt: 0,
      endpoint: '',
      peerIdentity: '',
      tls: false,
      notes: {},
    },
  };
}

/** A response with a real body stream of `text`. */
export function fakeResponse(status: number, text = '', headers: HeaderMap = {}): MeshResponse {
  return { status, headers, body: Readable.from([Buffer.from(text)]) };
}

/** Read a stream to the end. */
export async function readAll(r: Readable | null): Promise<Buffer> {
  if (!r) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

/** Resolve after `ms` (test pacing only). */
export function wait(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
