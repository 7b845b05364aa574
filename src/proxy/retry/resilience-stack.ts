/**
 * The per-request resilience layers of one route rule, in the order the proxy assembly should
 * put them (outermost first; the balancer and transport go below):
 *
 *   rate limit → request timeout → fault injection → retry (+ per-try timeout, body replay)
 *
 * Rate limiting first rejects excess load before any work. The request timeout covers faults,
 * every try and the backoffs (as Envoy's route timeout). Faults sit inside the timeout so an
 * injected delay exercises it, and outside the retries so an injected abort is not retried away.
 */
import type { Layer } from '../core/dispatch.ts';
import { faultLayer } from '../fault/fault-layer.ts';
import { rateLimitLayer } from '../ratelimit/rate-limit-layer.ts';
import type { TokenBucket } from '../ratelimit/token-bucket.ts';
import { timeoutLayer } from '../timeout/timeout-layer.ts';
import type { ResilienceOptions } from './resilience-options.ts';
import type { RetryBudget } from './retry-budget.ts';
import { retryLayer } from './retry-layer.ts';

export interface ResilienceDeps {
  /** Clock in performance.now() ms. */
  readonly now?: () => number;
  /** Uniform random in [0, 1) for backoff jitter and fault percentages. */
  readonly random?: () => number;
  /** Shared retry budget / rate-limit bucket (e.g. per destination); new ones otherwise. */
  readonly budget?: RetryBudget;
  readonly bucket?: TokenBucket;
}

/** Build the resilience layers for one resolved rule; compose them over the balancer stack. */
export function resilienceLayers(options: ResilienceOptions, deps: ResilienceDeps = {}): Layer[] {
  return [
    rateLimitLayer(options.rateLimit, deps),
    timeoutLayer(options.timeouts, deps.now),
    faultLayer(options.faults, deps),
    retryLayer(options, deps),
  ];
}
