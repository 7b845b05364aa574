/**
 * Fallbacks of the Hystrix flow (ours): what the client gets instead of an error when the
 * circuit is open, the bulkhead is full, or the call failed or timed out. Either a static
 * response from the TrafficPolicy, or another service the assembly resolves (the proxy
 * resolves service names elsewhere, so it is passed in as a {@link Service}).
 *
 * Every fallback answer carries `x-hexmesh-fallback: <reason>` so the client can tell it
 * from the real thing.
 */
import { Readable } from 'node:stream';
import type { TrafficPolicySpec } from '../../config/resources.ts';
import type { HeaderMap, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';

/** Why the fallback answered; the value of `x-hexmesh-fallback` and of `ctx.notes.fallback`. */
export type FallbackReason = 'circuit-open' | 'overloaded' | 'failure' | 'timeout';

export const FALLBACK_HEADER = 'x-hexmesh-fallback';

/** Answers a request in place of the destination. Built once per policy, called per request. */
export type Fallback = (req: MeshRequest, reason: FallbackReason) => Promise<MeshResponse>;

export type FallbackSpec = NonNullable<TrafficPolicySpec['fallback']>;

export interface StaticFallbackSpec {
  status: number;
  headers?: Readonly<Record<string, string>>;
  body: string;
}

/**
 * A static response. Marked `synthetic` with the reason, so telemetry counts it as made up
 * by the proxy. Header names are lower-cased; `content-type` defaults to text/plain when
 * there is a body. HEAD requests get no body.
 */
export function staticFallback(spec: StaticFallbackSpec): Fallback {
  // Encode once; each answer only wraps the shared buffer in a fresh stream.
  const payload = Buffer.from(spec.body, 'utf8');
  const base: Record<string, string> = {};
  for (const [name, value] of Object.entries(spec.headers ?? {})) base[name.toLowerCase()] = value;
  if (payload.length > 0 && base['content-type'] === undefined)
    base['content-type'] = 'text/plain; charset=utf-8';
  base['content-length'] = String(payload.length);
  const status = spec.status;
  return (req, reason) => {
    // A fresh object: later layers (response header filters) may edit it.
    const headers: HeaderMap = { ...base, [FALLBACK_HEADER]: reason };
    const body = payload.length > 0 && req.method !== 'HEAD' ? Readable.from([payload]) : null;
    return Promise.resolve({ status, headers, body, synthetic: reason });
  };
}

/**
 * Another service answers. When the failed call already read the request body, the
 * fallback gets the request without one (bodies are never buffered).
 */
export function serviceFallback(service: Service): Fallback {
  return async (req, reason) => {
    // The failed call's deadline and abort scope are spent (after a timeout both already
    // fired): the fallback runs under its own timeouts, still cut short by the client going away.
    req.ctx.deadline = Infinity;
    req.ctx.trySignal = undefined;
    const body = req.body;
    const forward = body && (body.readableDidRead || body.destroyed) ? { ...req, body: null } : req;
    const res = await service(forward);
    res.headers[FALLBACK_HEADER] = reason;
    return res;
  };
}

/**
 * Build the fallback a TrafficPolicy asks for. A `service` fallback needs `resolve`, which
 * turns the service name (and port) into a Service; without it this is a config error.
 */
export function fallbackFromSpec(
  spec: TrafficPolicySpec['fallback'],
  resolve?: (service: string, port: number | undefined) => Service,
): Fallback | undefined {
  if (!spec) return undefined;
  if ('response' in spec) return staticFallback(spec.response);
  if (!resolve)
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      `fallback.service ${spec.service}: no way to reach fallback services here`,
      { context: { service: spec.service } },
    );
  return serviceFallback(resolve(spec.service, spec.port));
}
