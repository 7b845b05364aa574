/**
 * The caller's gRPC deadline, enforced by the proxy itself: a client that does not enforce its
 * own deadline (or whose clock the server cannot trust) still gets DEADLINE_EXCEEDED on time
 * instead of waiting for the route timeout. As Envoy's `grpc_timeout_header_max` / Linkerd:
 *
 * - `grpc-timeout` (gRPC over HTTP/2: 1–8 digits and a unit H M S m u n) lowers `ctx.deadline`,
 *   so the route timeout, retries and bulkhead all see min(route timeout, grpc-timeout);
 * - when it passes before response headers, the call fails with HEXMESH_ERR_TIMEOUT, which the
 *   error mapper answers as a trailers-only response with grpc-status 4 (DEADLINE_EXCEEDED);
 * - the transport rewrites `grpc-timeout` to the budget left when the request goes upstream
 *   ({@link propagateGrpcTimeout}), so each hop's server sees the caller's real deadline.
 *
 * An unparsable value is ignored, as Envoy does (the server decides what to make of it).
 */
import type { Layer, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
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
      return new TryScope(ctx.trySignal ?? ctx.signal).run(
        next,
        req,
        Math.max(0, ctx.deadline - t),
        'request',
      );
    };
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
