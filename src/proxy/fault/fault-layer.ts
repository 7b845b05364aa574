/**
 * Fault injection (Envoy's fault filter, Istio's HTTPFaultInjection): delay a share of requests,
 * abort a share with a chosen status. Place it inside the request timeout, so injected delays
 * exercise the timeouts they are meant to test, and outside the retry layer, so an injected
 * abort is what the client sees rather than something the proxy retries away.
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { sleep } from '../core/cancel.ts';
import type { Layer, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import type { FaultOptions } from '../retry/resilience-options.ts';

export interface FaultLayerDeps {
  /** Uniform random in [0, 1); one draw per configured fault per request. */
  readonly random?: () => number;
}

const passThrough: Layer = (next) => next;

/**
 * Build the fault layer. A delay waits `duration` ms (cut short, with the abort reason, when
 * `ctx.trySignal ?? ctx.signal` aborts) before calling the inner service. An abort throws
 * HEXMESH_ERR_FAULT_INJECTED whose context carries `status` (and `grpcStatus` when set): the
 * error mapper answers with those instead of the code's default 503 / UNAVAILABLE.
 * Notes `ctx.notes.fault` = `delay` | `abort` for telemetry.
 */
export function faultLayer(options: FaultOptions | null, deps: FaultLayerDeps = {}): Layer {
  if (!options || (!options.delay && !options.abort)) return passThrough;
  const random = deps.random ?? Math.random;
  const d = options.delay;
  const a = options.abort;
  const abortContext: Record<string, number> | undefined = a
    ? a.grpcStatus !== undefined
      ? { status: a.status, grpcStatus: a.grpcStatus }
      : { status: a.status }
    : undefined;

  return (next: Service): Service => {
    // percent is 0..100; random() is in [0, 1), so 0 never fires and 100 always does.
    function aborted(): boolean {
      return a !== undefined && random() * 100 < a.percent;
    }
    function injectAbort(req: MeshRequest): Promise<never> {
      const svc = req.ctx.dstService;
      req.ctx.notes.fault = 'abort';
      return Promise.reject(
        new HexmeshError(
          'HEXMESH_ERR_FAULT_INJECTED',
          `fault injected: abort with ${req.grpc && a!.grpcStatus !== undefined ? `grpc-status ${a!.grpcStatus}` : `status ${a!.status}`} calling ${svc}`,
          { context: { ...abortContext, service: svc } },
        ),
      );
    }
    async function delayed(req: MeshRequest): Promise<MeshResponse> {
      const signal = req.ctx.trySignal ?? req.ctx.signal;
      req.ctx.notes.fault = 'delay';
      await sleep(d!.duration, signal);
      if (signal.aborted) throw signal.reason;
      return aborted() ? injectAbort(req) : next(req);
    }
    return function fault(req: MeshRequest): Promise<MeshResponse> {
      if (d !== undefined && random() * 100 < d.percent) return delayed(req);
      return aborted() ? injectAbort(req) : next(req);
    };
  };
}
