/**
 * Resolves the per-request resilience settings of one route rule: the HTTPRoute/GRPCRoute rule's
 * `timeouts`/`retry` over the TrafficPolicy's `timeouts`/`retries`/`faults`/`rateLimit`, over
 * hexmesh's defaults (docs/retries-and-timeouts.md). Done once per rule when config changes; the
 * layers read the frozen result and never re-check it.
 */
import type { HTTPRouteRule, TrafficPolicySpec } from '../../config/resources.ts';

/** Request bodies up to this size are kept for a possible retry (Linkerd's limit). */
export const MAX_REPLAY_BYTES = 64 * 1024;

/** hexmesh's defaults, from the Timeouts and Retries sections of the design semantics. */
export const RESILIENCE_DEFAULTS = Object.freeze({
  /** Whole request incl. retries (Envoy's route timeout); 0 disables. */
  requestTimeout: 15_000,
  connectTimeout: 5_000,
  /** Retries beyond the first try. */
  attempts: 2,
  /**
   * `reset` too: an upstream that dies resets the requests on its pooled keep-alive connections,
   * and an idempotent request may be repeated after that (RFC 9110 §9.2.2, as Go's and undici's
   * clients do). The retry layer applies `reset` to idempotent methods only.
   */
  retryOn: Object.freeze(['connect-failure', 'refused-stream', 'reset'] as const),
  backoffBase: 25,
  /** Envoy: the backoff cap defaults to 10 × the base (25 ms → 250 ms). */
  backoffMaxFactor: 10,
  budget: Object.freeze({ percent: 20, minPerSecond: 10, window: 10_000 }),
});

export type RetryOn =
  'connect-failure' | 'refused-stream' | '5xx' | 'gateway-error' | 'reset' | 'retriable-status-codes';

/** gRPC status codes by the names the TrafficPolicy uses. */
export const GRPC_RETRYABLE = Object.freeze({
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
});

export interface TimeoutOptions {
  /** Whole request incl. retries and backoff, ms; 0 = no timeout. */
  readonly request: number;
  /** One try, ms; equals `request` unless set lower (0 when both are 0). */
  readonly perTry: number;
  /** TCP/TLS connect, ms; read by the connection pool, not by these layers. */
  readonly connect: number;
}

export interface RetryBudgetOptions {
  /** Retries allowed as a percentage of requests over the window. */
  readonly percent: number;
  /** Retries per second always allowed, whatever the request rate. */
  readonly minPerSecond: number;
  /** Sliding window, ms. */
  readonly window: number;
}

export interface RetryOptions {
  /** Retries beyond the first try; 0 disables retrying. */
  readonly attempts: number;
  /** Conditions retried; connect failures and refused streams are retried whatever this says. */
  readonly on: readonly RetryOn[];
  /** HTTP statuses retried (idempotent methods only unless `retryNonIdempotent`). */
  readonly codes: readonly number[];
  /** gRPC statuses retried when they come in the response headers (trailers-only responses). */
  readonly grpcStatuses: readonly number[];
  /** Full-jitter backoff: retry n waits random in [0, min((2^n − 1)·base, max)) ms. */
  readonly backoff: { readonly base: number; readonly max: number };
  readonly budget: RetryBudgetOptions;
  readonly retryNonIdempotent: boolean;
  /** Largest request body kept for replay. */
  readonly maxReplayBytes: number;
}

export interface FaultOptions {
  readonly delay?: { readonly percent: number; readonly duration: number };
  readonly abort?: { readonly percent: number; readonly status: number; readonly grpcStatus?: number };
}

export interface RateLimitOptions {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  /** ms */
  readonly fillInterval: number;
}

/** Everything the per-request resilience layers of one route rule need. Frozen. */
export interface ResilienceOptions {
  readonly timeouts: TimeoutOptions;
  readonly retry: RetryOptions;
  readonly faults: FaultOptions | null;
  readonly rateLimit: RateLimitOptions | null;
}

/** The part of an HTTPRoute or GRPCRoute rule these layers read (both kinds share the shape). */
export type RouteRuleResilience = Pick<HTTPRouteRule, 'timeouts' | 'retry'>;
/** The part of a TrafficPolicy spec these layers read. */
export type PolicyResilience = Pick<TrafficPolicySpec, 'timeouts' | 'retries' | 'faults' | 'rateLimit'>;

/**
 * Merge a route rule's settings over a policy's over the defaults, field by field (a rule that
 * sets only `retry.codes` keeps the policy's `attempts`). Returns a deeply frozen object.
 */
export function resolveResilience(
  rule?: RouteRuleResilience | null,
  policy?: PolicyResilience | null,
): ResilienceOptions {
  const d = RESILIENCE_DEFAULTS;
  const rt = rule?.timeouts;
  const pt = policy?.timeouts;
  const request = rt?.request ?? pt?.request ?? d.requestTimeout;
  let perTry = rt?.backendRequest ?? pt?.perTry ?? 0;
  // As Gateway API: a try never outlives the request; unset (or 0) means "= request".
  if (perTry === 0 || (request > 0 && perTry > request)) perTry = request;

  const rr = rule?.retry;
  const pr = policy?.retries;
  const on = new Set<RetryOn>(pr?.on ?? d.retryOn);
  const codes = rr?.codes ?? pr?.codes ?? [];
  // Listing codes is the opt-in; Envoy's `retriable-status-codes` flag is implied by them.
  if (codes.length > 0) on.add('retriable-status-codes');
  const base = rr?.backoff ?? pr?.backoff?.base ?? d.backoffBase;
  const max = pr?.backoff?.max ?? Math.max(base * d.backoffMaxFactor, base);

  const faults = policy?.faults;
  const rateLimit = policy?.rateLimit;
  return deepFreeze({
    timeouts: { request, perTry, connect: pt?.connect ?? d.connectTimeout },
    retry: {
      attempts: rr?.attempts ?? pr?.attempts ?? d.attempts,
      on: [...on],
      codes: [...new Set(codes)].sort((a, b) => a - b),
      grpcStatuses: (pr?.grpcStatuses ?? []).map((s) => GRPC_RETRYABLE[s]),
      backoff: { base, max },
      budget: {
        percent: pr?.budget?.percent ?? d.budget.percent,
        minPerSecond: pr?.budget?.minPerSecond ?? d.budget.minPerSecond,
        window: pr?.budget?.window ?? d.budget.window,
      },
      retryNonIdempotent: rr?.retryNonIdempotent ?? pr?.retryNonIdempotent ?? false,
      maxReplayBytes: MAX_REPLAY_BYTES,
    },
    faults: faults && (faults.delay || faults.abort) ? { ...faults } : null,
    rateLimit: rateLimit ? { ...rateLimit } : null,
  });
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
