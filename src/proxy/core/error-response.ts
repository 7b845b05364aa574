/**
 * The one place that turns an error into what the client receives (as linkerd2-proxy's
 * error responses): header `x-hexmesh-error: <code>`, a one-line body naming the cause,
 * and for gRPC the matching `grpc-status` / `grpc-message` in a trailers-only response.
 */
import { Readable } from 'node:stream';
import { ERROR_CODES, HexmeshError } from '../../errors/hexmesh-error.ts';
import type { MeshRequest, MeshResponse } from './dispatch.ts';

export const ERROR_HEADER = 'x-hexmesh-error';

/** Normalise anything thrown into a HexmeshError. */
export function toHexmeshError(err: unknown, req: MeshRequest): HexmeshError {
  if (err instanceof HexmeshError) return err;
  const e = err as Error;
  if (e?.name === 'AbortError' && req.ctx.signal.aborted)
    return new HexmeshError(
      'HEXMESH_ERR_UPSTREAM_RESET',
      `request to ${req.ctx.dstService} cancelled by the client`,
      {
        cause: err,
      },
    );
  return new HexmeshError('HEXMESH_ERR_INTERNAL', `internal proxy error: ${e?.message ?? String(err)}`, {
    cause: err,
  });
}

/**
 * Percent-encode a grpc-message as the gRPC HTTP/2 spec says: only bytes outside
 * 0x20–0x7E, and `%` itself. (encodeURIComponent also encodes `:`, `/`, `"` …, which
 * clients that decode per the spec, grpc-js among them, then show as `%3A`.)
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte < 0x20 || byte > 0x7e || byte === 0x25
        ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}

/** Build the synthetic response for an error. */
export function errorResponse(err: unknown, req: MeshRequest): MeshResponse {
  const e = toHexmeshError(err, req);
  const info = ERROR_CODES[e.code];
  // Fault injection (and similar) may carry the status to answer with.
  const status = typeof e.context.status === 'number' ? e.context.status : info.status;
  const message = e.message.split('\n')[0];
  if (req.grpc) {
    const grpcStatus = typeof e.context.grpcStatus === 'number' ? e.context.grpcStatus : info.grpc;
    // gRPC: HTTP 200 with a trailers-only response carrying the status.
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatus),
        'grpc-message': encodeGrpcMessage(message),
        [ERROR_HEADER]: e.header,
      },
      body: null,
      synthetic: e.header,
    };
  }
  const body = `${message}\n`;
  return {
    status,
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      [ERROR_HEADER]: e.header,
    },
    body: Readable.from([Buffer.from(body)]),
    synthetic: e.header,
  };
}
