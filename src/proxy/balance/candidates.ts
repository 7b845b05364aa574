/**
 * The candidate set for one pick, with Envoy's panic threshold: normally the eligible
 * endpoints (healthy and not ejected); when fewer than `panicThreshold`% of all endpoints
 * are eligible, every endpoint, on the theory that sending some traffic to unhealthy
 * hosts beats overloading the few healthy ones. A threshold of 0 disables panic mode.
 *
 * Health and ejection flags are flipped by other components without telling the balancer,
 * so the set is recomputed on every pick: one pass over the endpoints into a reused index
 * buffer, no allocation.
 */
import { isEligible, type EndpointState } from './endpoint-state.ts';

export class CandidateSet {
  /** Indices into the endpoint list; the first {@link count} are valid. */
  idx: Int32Array = new Int32Array(8);
  count = 0;
  /** Sum of the candidates' weights. */
  totalWeight = 0;
  /** True when the last refresh fell back to all endpoints. */
  panic = false;

  /** @param panicThreshold percent 0..100; 0 disables panic mode. */
  constructor(readonly panicThreshold: number) {}

  /** Recompute for `endpoints`; returns the candidate count (0: nothing to pick). */
  refresh(endpoints: readonly EndpointState[]): number {
    const n = endpoints.length;
    if (this.idx.length < n) this.idx = new Int32Array(Math.max(n, this.idx.length * 2));
    const idx = this.idx;
    let count = 0;
    let weight = 0;
    for (let i = 0; i < n; i++) {
      const ep = endpoints[i];
      if (isEligible(ep)) {
        idx[count++] = i;
        weight += ep.weight;
      }
    }
    // As Envoy: panic when the eligible share is below the threshold, including when it is 0.
    this.panic = this.panicThreshold > 0 && count * 100 < this.panicThreshold * n;
    if (this.panic) {
      weight = 0;
      for (let i = 0; i < n; i++) {
        idx[i] = i;
        weight += endpoints[i].weight;
      }
      count = n;
    }
    this.count = count;
    this.totalWeight = weight;
    return count;
  }

  /** Whether endpoint `ep` is in the set computed by the last refresh. */
  has(ep: EndpointState): boolean {
    return this.panic || isEligible(ep);
  }

  /** A candidate index drawn with probability proportional to weight. */
  weighted(endpoints: readonly EndpointState[], random: () => number): number {
    let r = random() * this.totalWeight;
    const last = this.count - 1;
    for (let k = 0; k < last; k++) {
      const i = this.idx[k];
      r -= endpoints[i].weight;
      if (r < 0) return i;
    }
    return this.idx[last];
  }

  /** A candidate index drawn uniformly. */
  uniform(random: () => number): number {
    return this.idx[Math.floor(random() * this.count) % this.count];
  }
}
