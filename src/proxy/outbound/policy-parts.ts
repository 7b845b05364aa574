/**
 * The stateful parts a TrafficPolicy gives a destination (balancer, outlier detection, health
 * checks, circuit breaker, bulkhead, retry budget), built section by section.
 *
 * The same builders serve twice: a Destination builds its parts with them (destination.ts), and
 * the resource schema runs them dry on every TrafficPolicy (src/config/resources.ts), so the
 * API refuses exactly what a proxy would refuse at build time — one validation, not two lists
 * of rules that drift apart (issue 10: a policy the API took but every proxy refused).
 */
import type { TrafficPolicySpec } from '../../config/resources.ts';
import { createBalancer, type Balancer } from '../balance/balancer.ts';
import { hashKeyExtractor, type HashKeyExtractor } from '../balance/hash-key.ts';
import { bulkheadFromSpec, type Bulkhead, type RetryLimiter } from '../breaker/bulkhead.ts';
import { circuitBreakerFromSpec, type CircuitBreaker } from '../breaker/circuit-breaker.ts';
import { HealthChecker } from '../health/health-checker.ts';
import {
  OutlierDetector,
  OUTLIER_DEFAULTS,
  type OutlierDetectorOptions,
} from '../outlier/outlier-detector.ts';
import { resolveResilience } from '../retry/resilience-options.ts';
import { RetryBudget } from '../retry/retry-budget.ts';

/** Everything of a destination that keeps state and is built from its policy. */
export interface DestinationParts {
  balancer: Balancer;
  hashKey: HashKeyExtractor;
  outlier: OutlierDetector | undefined;
  health: HealthChecker | undefined;
  breaker: CircuitBreaker | undefined;
  bulkhead: Bulkhead;
  retryLimiter: RetryLimiter;
  budget: RetryBudget;
}

/** A policy section with state of its own, by its path under `spec`. */
export type PolicySection =
  | 'loadBalancer'
  | 'outlierDetection'
  | 'healthCheck'
  | 'circuitBreaker'
  | 'connectionPool'
  | 'retries.budget';

/** What building a section needs besides the policy. */
export interface PartsContext {
  /** The destination's service name (bulkhead errors name it). */
  service: string;
  /** Hooks of the outlier detector (metrics); `autoSweep: false` for a dry build. */
  outlier: OutlierDetectorOptions;
}

interface SectionBuilder {
  /** The section's value in a policy (what "changed" is judged on). */
  of(policy: TrafficPolicySpec | undefined): unknown;
  /** Build the section's parts; throws (RangeError) what the proxy refuses. */
  build(policy: TrafficPolicySpec | undefined, ctx: PartsContext): Partial<DestinationParts>;
}

/** In the order a destination applies them. */
export const POLICY_SECTIONS: ReadonlyMap<PolicySection, SectionBuilder> = new Map<
  PolicySection,
  SectionBuilder
>([
  [
    'loadBalancer',
    {
      of: (p) => p?.loadBalancer,
      build: (p) => ({
        // Empty: the update's commit hands it the running endpoint objects (destination.ts).
        balancer: createBalancer(p?.loadBalancer, []),
        hashKey: hashKeyExtractor(p?.loadBalancer?.hashOn),
      }),
    },
  ],
  [
    'outlierDetection',
    {
      of: (p) => p?.outlierDetection,
      build: (p, ctx) => ({
        outlier: new OutlierDetector(p?.outlierDetection ?? OUTLIER_DEFAULTS, ctx.outlier),
      }),
    },
  ],
  [
    'healthCheck',
    {
      of: (p) => p?.healthCheck,
      // Targets are set when the update commits: nothing is probed before then.
      build: (p) => ({ health: p?.healthCheck ? new HealthChecker(p.healthCheck, [], {}) : undefined }),
    },
  ],
  [
    'circuitBreaker',
    {
      of: (p) => p?.circuitBreaker,
      build: (p) => ({ breaker: circuitBreakerFromSpec(p?.circuitBreaker) }),
    },
  ],
  [
    'connectionPool',
    {
      of: (p) => p?.connectionPool,
      build: (p, ctx) => {
        const bh = bulkheadFromSpec(p?.connectionPool, ctx.service);
        return { bulkhead: bh.bulkhead, retryLimiter: bh.retries };
      },
    },
  ],
  [
    'retries.budget',
    {
      of: (p) => p?.retries?.budget,
      build: (p) => ({ budget: new RetryBudget(resolveResilience(undefined, p).retry.budget) }),
    },
  ],
]);

/** Stop the background work of parts built but never put in force. */
export function closeParts(parts: Partial<DestinationParts>): void {
  parts.outlier?.close();
  parts.health?.close();
}

const DRY: PartsContext = { service: 'validation', outlier: { autoSweep: false } };

/**
 * Why a proxy would refuse this value of one policy section, or undefined if it builds.
 * `value` is the parsed section (durations in ms, defaults applied).
 */
export function policySectionProblem(section: PolicySection, value: unknown): string | undefined {
  const builder = POLICY_SECTIONS.get(section)!;
  const policy = (
    section === 'retries.budget' ? { retries: { budget: value } } : { [section]: value }
  ) as TrafficPolicySpec;
  try {
    closeParts(builder.build(policy, DRY));
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
