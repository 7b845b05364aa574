/**
 * The caller's gRPC deadline, enforced by the proxy itself: a client that does not enforce its
 * own deadline (or whose clock the server cannot trust) still gets DEADLINE_EXCEEDED on time
 * instead of waiting for the route timeout. As Envoy's `grpc_timeout_header_max` / Linkerd:
 *
 * - `grpc-timeout` (gRPC over HTTP/2: 1–8 digits and a unit H M S m u n) lowers `ctx.deadline`,
 *   so the route timeout, retries and bulkhead all see min(route timeout, grpc-timeout);
 * - when it passes before response headers, the call fails with HEXMESH_ERR_TIMEOUT, which the
 *   error mapper answers as a trailers-only response with grpc-status 4 (DEADLINE_EXCEEDED);
 *   when it passes while the response streams (a server that sent its headers, then stalls),
 *   the upstream stream is cut and the response ends with those same trailers;
 * - the transport rewrites `grpc-timeout` to the budget left when the request goes upstream
 *   ({@link propagateGrpcTimeout}), so each hop's server sees the caller's real deadline.
 *
 * An unparsable value is ignored, as Envoy does (the server decides what to make of it).
 */
import { PassThrough, type Readable } from 'node:stream';
import { ERROR_CODES, HexmeshError } from '../../errors/hexmesh-error.ts';
import type { HeaderMap, Layer, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { ERROR_HEADER } from '../core/error-response.ts';
import { TryScope } from './try-scope.ts';

export const GRPC_TIMEOUT = 'grpc-timeout';

/** Milliseconds per grpc-timeout unit. */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** Parse a grpc-timeout value into milliseconds, or undefined if it is not one. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const n = value.length - 1;
  // TimeoutValue is at most 8 ASCII digits (gRPC over HTTP/2 spec).
  if (n < 1 || n > 8) return undefined;
  const unit = UNIT_MS[value[n]];
  if (unit === undefined) return undefined;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
    digits = digits * 10 + c;
  }
  return digits * unit;
}

/** The largest value grpc-timeout can carry in 8 digits. */
const MAX_DIGITS = 99_999_999;

/**
 * Encode a budget in milliseconds as a grpc-timeout value: the finest unit that fits 8 digits
 * (as grpc-go), rounded down so the upstream's deadline is never later than ours.
 */
export function encodeGrpcTimeout(ms: number): string {
  const t = Math.max(0, ms);
  if (t * 1000 <= MAX_DIGITS) return `${Math.floor(t * 1000)}u`;
  if (t <= MAX_DIGITS) return `${Math.floor(t)}m`;
  if (t / 1000 <= MAX_DIGITS) return `${Math.floor(t / 1000)}S`;
  if (t / 60_000 <= MAX_DIGITS) return `${Math.floor(t / 60_000)}M`;
  return `${Math.min(MAX_DIGITS, Math.floor(t / 3_600_000))}H`;
}

const perfNow = (): number => performance.now();

/**
 * Build the layer that enforces a gRPC request's `grpc-timeout`. Outermost on each listener's
 * chain (before routing), so the deadline runs from the request's arrival. Requests that are
 * not gRPC, or carry no valid grpc-timeout, pass straight through.
 *
 * @param now clock in performance.now() milliseconds (ctx.deadline's clock).
 */
export function grpcTimeoutLayer(now: () => number = perfNow): Layer {
  return (next: Service): Service =>
    function grpcTimeout(req: MeshRequest): Promise<MeshResponse> {
      if (!req.grpc) return next(req);
      const ms = parseGrpcTimeout(req.headers[GRPC_TIMEOUT]);
      if (ms === undefined) return next(req);
      const ctx = req.ctx;
      const t = now();
      if (t + ms < ctx.deadline) ctx.deadline = t + ms;
      const remaining = Math.max(0, ctx.deadline - t);
      const scope = new TryScope(ctx.trySignal ?? ctx.signal);
      return scope.run(next, req, remaining, 'request').then(
        (res) => boundResponse(res, ctx.deadline - now(), Math.round(remaining), ctx.dstService),
        (err: unknown) => {
          // The scope named the service as it was on arrival (before routing): name it now.
          if (err !== scope.timeoutError) throw err;
          throw new HexmeshError(
            'HEXMESH_ERR_TIMEOUT',
            `timeout after ${Math.round(remaining)} ms (grpc-timeout) calling ${ctx.dstService}`,
            {
              cause: err,
              context: { service: ctx.dstService, timeoutMs: Math.round(remaining), timeout: 'grpc' },
            },
          );
        },
      );
    };
}

/** setTimeout's range; a longer deadline is as good as none for a response stream. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * A response whose body must end by the deadline: past it, the upstream body is cut (its stream
 * reset) and the response ends with DEADLINE_EXCEEDED trailers, as a gRPC server would end it.
 * Trailers-only responses and deadlines beyond the timer's range are returned as they are.
 */
function boundResponse(res: MeshResponse, leftMs: number, budgetMs: number, service: string): MeshResponse {
  const src = res.body;
  if (src === null || leftMs > MAX_TIMER_MS) return res;
  const out = new PassThrough();
  const trailers: HeaderMap = {};
  let cut = false;
  const timer = setTimeout(
    () => {
      if (src.readableEnded) return;
      cut = true;
      src.unpipe(out);
      src.destroy();
      trailers['grpc-status'] = '4';
      trailers['grpc-message'] =
        `timeout after ${budgetMs} ms (grpc-timeout) calling ${service}: response cut`;
      trailers[ERROR_HEADER] = ERROR_CODES.HEXMESH_ERR_TIMEOUT.header;
      out.end();
    },
    Math.max(0, leftMs),
  );
  // Before the pipe's own 'end' listener: the upstream's trailers are in place when `out` ends.
  src.once('end', () => {
    clearTimeout(timer);
    Object.assign(trailers, res.trailers);
  });
  // The cut upstream body may report its abort: the response already ended well.
  src.on('error', (err: Error) => {
    clearTimeout(timer);
    if (!cut) out.destroy(err);
  });
  out.once('close', () => {
    clearTimeout(timer);
    if (!src.readableEnded) src.destroy();
  });
  src.pipe(out);
  return { ...res, body: out as Readable, trailers };
}

/**
 * Rewrite a gRPC request's `grpc-timeout` to the budget left before `ctx.deadline`, just before
 * it goes upstream. Only a request that carried one is touched: the route timeout alone is the
 * proxy's business, not the server's.
 */
export function propagateGrpcTimeout(req: MeshRequest, now: () => number = perfNow): void {
  if (!req.grpc || req.ctx.deadline === Infinity || req.headers[GRPC_TIMEOUT] === undefined) return;
  req.headers[GRPC_TIMEOUT] = encodeGrpcTimeout(req.ctx.deadline - now());
}
