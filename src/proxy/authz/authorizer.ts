/**
 * The decision over every policy that applies to this workload, as Istio:
 * 1. any DENY policy matches → denied by it;
 * 2. AUDIT policies that match are counted (they never change the outcome);
 * 3. if any ALLOW policy applies, the first one that matches allows; none → denied;
 * 4. no ALLOW policy at all → allowed.
 */
import type { AuthorizationPolicy } from '../../config/resources.ts';
import type { AuthzAttributes } from './attributes.ts';
import { compilePolicy, type CompiledPolicy } from './policy.ts';

/** Counts one decision; bound to its metric series at config time. */
export interface DecisionCounter {
  inc(): void;
}

/** Where decisions are counted (ProxyMetrics#authzDecision). */
export type DecisionCounters = (policy: string, action: string, decision: string) => DecisionCounter;

const NOOP: DecisionCounter = { inc() {} };
export const NO_COUNTERS: DecisionCounters = () => NOOP;

/** A decision; one object per policy and outcome, built at config time. */
export interface Verdict {
  readonly allowed: boolean;
  /** The policy that decided, or null (no ALLOW matched / no policy at all). */
  readonly policy: string | null;
  readonly counter: DecisionCounter;
}

interface Entry {
  readonly policy: CompiledPolicy;
  readonly verdict: Verdict;
}

export class Authorizer {
  readonly #deny: Entry[] = [];
  readonly #allow: Entry[] = [];
  readonly #audit: Entry[] = [];
  readonly #noAllowMatched: Verdict;
  readonly #noPolicy: Verdict;

  /** `namespace`: the workload's, for bare service names in `hosts` (default: each policy's). */
  constructor(
    policies: readonly AuthorizationPolicy[],
    counters: DecisionCounters = NO_COUNTERS,
    namespace?: string,
  ) {
    // Sorted by name so the deciding policy does not depend on resource order.
    const sorted = [...policies].sort((a, b) =>
      `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(
        `${b.metadata.namespace}/${b.metadata.name}`,
      ),
    );
    for (const p of sorted) {
      const policy = compilePolicy(p, namespace);
      const decision =
        policy.action === 'DENY' ? 'denied' : policy.action === 'ALLOW' ? 'allowed' : 'audited';
      const verdict: Verdict = {
        allowed: policy.action !== 'DENY',
        policy: policy.name,
        counter: counters(policy.name, policy.action, decision),
      };
      (policy.action === 'DENY' ? this.#deny : policy.action === 'ALLOW' ? this.#allow : this.#audit).push({
        policy,
        verdict,
      });
    }
    this.#noAllowMatched = { allowed: false, policy: null, counter: counters('none', 'ALLOW', 'denied') };
    this.#noPolicy = { allowed: true, policy: null, counter: NOOP };
  }

  /** No policy applies: the layer need not be installed. */
  get empty(): boolean {
    return this.#deny.length + this.#allow.length + this.#audit.length === 0;
  }

  /** Names of the ALLOW policies (for the denial message). */
  get allowPolicies(): string[] {
    return this.#allow.map((e) => e.policy.name);
  }

  /**
   * Decide for `a`. `audit`: count matching AUDIT policies (false when re-deciding the
   * same request for another method, so audits are counted once).
   */
  decide(a: AuthzAttributes, audit = true): Verdict {
    for (const e of this.#deny) if (e.policy.matches(a)) return e.verdict;
    if (audit) for (const e of this.#audit) if (e.policy.matches(a)) e.verdict.counter.inc();
    if (this.#allow.length === 0) return this.#noPolicy;
    for (const e of this.#allow) if (e.policy.matches(a)) return e.verdict;
    return this.#noAllowMatched;
  }

  /**
   * Decide for an opaque TCP connection (a tunnel, a declared opaque port, an opaque app):
   * the same order, each policy read for TCP (CompiledPolicy.matchesConnection).
   */
  decideConnection(a: AuthzAttributes): Verdict {
    for (const e of this.#deny) if (e.policy.matchesConnection(a)) return e.verdict;
    for (const e of this.#audit) if (e.policy.matchesConnection(a)) e.verdict.counter.inc();
    if (this.#allow.length === 0) return this.#noPolicy;
    for (const e of this.#allow) if (e.policy.matchesConnection(a)) return e.verdict;
    return this.#noAllowMatched;
  }
}
