/**
 * The request timeout: as Envoy's route timeout, it covers every try, the backoff between them
 * and the wait for response headers; once headers arrived the response streams and only the
 * stream idle timeout (elsewhere) applies.
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Layer, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { TryScope } from './try-scope.ts';

export interface TimeoutLayerOptions {
  /** Whole-request timeout in ms; 0 disables the layer. */
  readonly request: number;
}

const perfNow = (): number => performance.now();
const passThrough: Layer = (next) => next;

/**
 * Build the request-timeout layer. It lowers `ctx.deadline` to now + `request` (keeping an
 * earlier one, e.g. a caller's gRPC deadline), publishes an abortable `ctx.trySignal` for
 * everything below, and fails with HEXMESH_ERR_TIMEOUT (`timeout after N ms calling svc`) if
 * no response headers came by the deadline, aborting the inner call.
 *
 * @param now clock in performance.now() milliseconds (ctx.deadline's clock); injectable for tests.
 */
export function timeoutLayer(options: TimeoutLayerOptions, now: () => number = perfNow): Layer {
  const ms = options.request;
  if (!(ms > 0)) return passThrough;
  return (next: Service): Service =>
    function requestTimeout(req: MeshRequest): Promise<MeshResponse> {
      const ctx = req.ctx;
      const t = now();
      if (t + ms < ctx.deadline) ctx.deadline = t + ms;
      const remaining = ctx.deadline - t;
      if (remaining <= 0)
        return Promise.reject(
          new HexmeshError('HEXMESH_ERR_TIMEOUT', `timeout after 0 ms calling ${ctx.dstService}`, {
            context: { service: ctx.dstService, timeoutMs: 0, timeout: 'request' },
          }),
        );
      return new TryScope(ctx.trySignal ?? ctx.signal).run(next, req, remaining, 'request');
    };
}

/**
 * Start the request timeout's clock without enforcing it: lowers `ctx.deadline` to now +
 * `request`. Placed outside the circuit breaker, so the time a request waits in the bulkhead
 * queue counts against its route timeout (as Envoy: the route timeout runs from the request's
 * arrival); the {@link timeoutLayer} further in then fails it at that same deadline.
 */
export function deadlineLayer(options: TimeoutLayerOptions, now: () => number = perfNow): Layer {
  const ms = options.request;
  if (!(ms > 0)) return passThrough;
  return (next: Service): Service =>
    function requestDeadline(req: MeshRequest): Promise<MeshResponse> {
      const d = now() + ms;
      if (d < req.ctx.deadline) req.ctx.deadline = d;
      return next(req);
    };
}
