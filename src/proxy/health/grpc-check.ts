/**
 * gRPC health check: the standard `grpc.health.v1.Health/Check` over HTTP/2 cleartext.
 *
 * The protobuf messages are tiny, so they are encoded by hand rather than pulling a
 * protobuf runtime into the proxy:
 *   HealthCheckRequest  { string service = 1; }
 *   HealthCheckResponse { ServingStatus status = 1; }  // 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN
 */
import http2 from 'node:http2';
import { type CheckResult, describeSocketError, hostPort } from './check-result.ts';

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;
/** A HealthCheckResponse is a few bytes; an answer past this is refused, not buffered. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** Length-prefixed gRPC message carrying a HealthCheckRequest for `service`. */
export function encodeHealthRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  // Field 1, wire type 2 (length-delimited); proto3 omits an empty string.
  const len = varint(name.length);
  const payload = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), len, name]);
  const frame = Buffer.alloc(5 + payload.length);
  frame.writeUInt8(0, 0); // not compressed
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  return frame;
}

/**
 * The `status` field of a HealthCheckResponse message (without the 5-byte prefix);
 * 0 (UNKNOWN) when absent, as proto3 defaults. Unknown fields are skipped.
 */
export function decodeHealthStatus(msg: Buffer): number {
  let status = 0;
  let i = 0;
  while (i < msg.length) {
    const [key, afterKey] = readVarint(msg, i);
    const field = key >>> 3;
    const wire = key & 7;
    i = afterKey;
    if (wire === 0) {
      const [v, next] = readVarint(msg, i);
      if (field === 1) status = v;
      i = next;
    } else if (wire === 2) {
      const [n, next] = readVarint(msg, i);
      i = next + n;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`bad protobuf wire type ${wire}`);
  }
  if (i > msg.length) throw new Error('truncated protobuf message');
  return status;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function readVarint(buf: Buffer, start: number): [number, number] {
  let result = 0;
  let shift = 0;
  let i = start;
  for (;;) {
    if (i >= buf.length) throw new Error('truncated protobuf varint');
    const b = buf[i++];
    // Status values are small; clamp anything wider than 32 bits rather than lose precision silently.
    if (shift < 32) result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [result, i];
    if (shift > 63) throw new Error('protobuf varint too long');
  }
}

/**
 * One gRPC health check for `service` ('' = the server as a whole). Passes only on
 * SERVING. Settles (never rejects) on the response, an error, or when `signal` aborts.
 */
export function grpcCheck(
  address: string,
  port: number,
  service: string,
  signal: AbortSignal,
): Promise<CheckResult> {
  const where = hostPort(address, port);
  return new Promise<CheckResult>((resolve) => {
    if (signal.aborted) return resolve({ status: 'critical', detail: 'check cancelled' });
    let settled = false;
    const session = http2.connect(`http://${where}`);
    const finish = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      session.close();
      session.destroy();
      resolve(r);
    };
    const onAbort = () => finish({ status: 'critical', detail: 'check cancelled' });
    signal.addEventListener('abort', onAbort, { once: true });
    session.on('error', (err) => finish({ status: 'critical', detail: describeSocketError(err, where) }));

    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'hexmesh-health-check',
    });
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    let grpcMessage = '';
    const chunks: Buffer[] = [];
    stream.on('response', (headers) => {
      httpStatus = Number(headers[':status']);
      // Trailers-only responses carry grpc-status in the headers.
      if (headers['grpc-status'] !== undefined) {
        grpcStatus = String(headers['grpc-status']);
        grpcMessage = String(headers['grpc-message'] ?? '');
      }
    });
    stream.on('trailers', (trailers) => {
      grpcStatus = String(trailers['grpc-status'] ?? '');
      grpcMessage = String(trailers['grpc-message'] ?? '');
    });
    let received = 0;
    stream.on('data', (c: Buffer) => {
      received += c.length;
      if (received <= MAX_RESPONSE_BYTES) chunks.push(c);
      else
        finish({
          status: 'critical',
          detail: `gRPC health response larger than ${MAX_RESPONSE_BYTES} bytes`,
        });
    });
    stream.on('error', (err) => finish({ status: 'critical', detail: describeSocketError(err, where) }));
    stream.on('end', () =>
      finish(verdict(httpStatus, grpcStatus, grpcMessage, Buffer.concat(chunks), service)),
    );
    stream.end(encodeHealthRequest(service));
  });
}

function verdict(
  httpStatus: number,
  grpcStatus: string | undefined,
  grpcMessage: string,
  body: Buffer,
  service: string,
): CheckResult {
  const what = service ? `service "${service}"` : 'server';
  if (httpStatus !== 200) return { status: 'critical', detail: `HTTP ${httpStatus} from gRPC health check` };
  if (grpcStatus !== '0') {
    const name =
      grpcStatus === '12'
        ? 'UNIMPLEMENTED (no grpc.health.v1 service)'
        : grpcStatus === '5'
          ? `NOT_FOUND (${what} unknown)`
          : `status ${grpcStatus ?? 'missing'}`;
    return {
      status: 'critical',
      detail: `gRPC ${name}${grpcMessage ? `: ${percentDecode(grpcMessage)}` : ''}`,
    };
  }
  if (body.length < 5) return { status: 'critical', detail: 'gRPC health response without a message' };
  const len = body.readUInt32BE(1);
  if (body[0] !== 0 || body.length < 5 + len)
    return { status: 'critical', detail: 'gRPC health response is compressed or truncated' };
  let status: number;
  try {
    status = decodeHealthStatus(body.subarray(5, 5 + len));
  } catch (err) {
    return { status: 'critical', detail: `bad gRPC health response: ${(err as Error).message}` };
  }
  const name = SERVING_STATUS[status] ?? `status ${status}`;
  return { status: status === 1 ? 'passing' : 'critical', detail: `${what} ${name}` };
}

/** grpc-message is percent-encoded; a malformed one is shown as received. */
function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
