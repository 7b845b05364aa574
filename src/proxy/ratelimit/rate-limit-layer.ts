/**
 * Local rate limit: one token bucket per layer instance (per route rule, or shared when the
 * assembly passes one bucket to several layers). Over the limit the request fails at once with
 * HEXMESH_ERR_RATE_LIMITED (429 / RESOURCE_EXHAUSTED), before any other work is done.
 */
import { formatDuration } from '../../config/duration.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Layer, MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import type { RateLimitOptions } from '../retry/resilience-options.ts';
import { TokenBucket } from './token-bucket.ts';

export interface RateLimitLayerDeps {
  /** Clock in ms for the bucket's refill. */
  readonly now?: () => number;
  /** A bucket to share; a new one from `options` otherwise. */
  readonly bucket?: TokenBucket;
}

const passThrough: Layer = (next) => next;

/** Build the rate-limit layer; `null` options give a pass-through layer. */
export function rateLimitLayer(options: RateLimitOptions | null, deps: RateLimitLayerDeps = {}): Layer {
  if (!options) return passThrough;
  const bucket = deps.bucket ?? new TokenBucket(options, deps.now);
  const limit = `${options.tokensPerFill} requests per ${formatDuration(options.fillInterval)}`;
  return (next: Service): Service =>
    function rateLimit(req: MeshRequest): Promise<MeshResponse> {
      if (bucket.tryTake()) return next(req);
      const svc = req.ctx.dstService;
      return Promise.reject(
        new HexmeshError('HEXMESH_ERR_RATE_LIMITED', `rate limited: ${limit} for ${svc}`, {
          context: { service: svc, limit },
        }),
      );
    };
}
