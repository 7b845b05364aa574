/**
 * Weighted choice among a rule's backendRefs (Gateway API: share = weight / sum of weights;
 * weight 0 receives no traffic). Cumulative weights are computed once per config; a pick is
 * one random number and a short scan.
 */

import type { CompiledFilter } from './filters.ts';

/** A destination service named by a backendRef or a mirror. */
export interface BackendTarget {
  readonly name: string;
  readonly namespace: string;
  /** Unset: the caller keeps the port the request was addressed to. */
  readonly port: number | undefined;
  readonly weight: number;
  /** The backendRef's own filters (header modifiers), applied after the rule's. */
  readonly filters?: readonly CompiledFilter[];
}

export class WeightedBackends {
  /** Every backend of the rule in config order, including weight-0 ones. */
  readonly all: readonly BackendTarget[];
  /** Sum of weights; 0 when there is nothing to pick. */
  readonly total: number;
  private readonly eligible: readonly BackendTarget[];
  private readonly cumulative: readonly number[];

  constructor(backends: readonly BackendTarget[]) {
    this.all = Object.freeze([...backends]);
    const eligible: BackendTarget[] = [];
    const cumulative: number[] = [];
    let sum = 0;
    for (const b of backends) {
      if (b.weight <= 0) continue;
      sum += b.weight;
      eligible.push(b);
      cumulative.push(sum);
    }
    this.eligible = eligible;
    this.cumulative = cumulative;
    this.total = sum;
  }

  /**
   * True when a request matching this rule can reach no backend: no backendRefs, or every
   * weight is 0. Gateway API says such requests get HTTP 500 (gRPC UNAVAILABLE); see
   * `noBackendError` in route-table.ts.
   */
  get empty(): boolean {
    return this.total === 0;
  }

  /**
   * Pick a backend with probability weight/total. `random` returns a number in [0, 1)
   * (injected in tests). Returns undefined when {@link empty}: the caller answers 500.
   */
  pick(random: () => number = Math.random): BackendTarget | undefined {
    const n = this.eligible.length;
    if (n === 0) return undefined;
    if (n === 1) return this.eligible[0];
    const r = random() * this.total;
    const cum = this.cumulative;
    for (let i = 0; i < n - 1; i++) if (r < cum[i]) return this.eligible[i];
    // The last one also absorbs a random() that returned exactly 1.
    return this.eligible[n - 1];
  }
}
