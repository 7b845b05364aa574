/**
 * What each algorithm implements: choose one index among the candidates. The shared
 * machinery (candidate set, panic threshold, keeping state across updates) lives in
 * balancer.ts, so each algorithm file holds only its own idea.
 */
import type { CandidateSet } from './candidates.ts';
import type { EndpointState } from './endpoint-state.ts';

export interface Picker {
  /** The endpoint list changed (membership or weights); rebuild any derived tables. */
  rebuild(endpoints: readonly EndpointState[]): void;
  /**
   * Index into `endpoints` of the chosen candidate. Called only with at least two candidates.
   * `hashKey` is undefined when the request carries no key (consistent-hash pickers then pick at random).
   */
  pick(endpoints: readonly EndpointState[], candidates: CandidateSet, hashKey: string | undefined): number;
}

/** Injected sources of time and randomness (deterministic in tests). */
export interface PickerEnv {
  readonly now: () => number;
  readonly random: () => number;
}

/** True when every endpoint has the same weight: algorithms may then skip weight arithmetic. */
export function uniformWeights(endpoints: readonly EndpointState[]): boolean {
  for (let i = 1; i < endpoints.length; i++) if (endpoints[i].weight !== endpoints[0].weight) return false;
  return true;
}

/**
 * Two distinct candidate indices for power-of-two-choices, each drawn proportionally to
 * weight (uniformly when weights are equal). Writes into `out` to avoid allocating.
 * With ties resolved in favour of the first draw, idle endpoints get traffic in
 * proportion to their weights.
 */
export function drawTwo(
  endpoints: readonly EndpointState[],
  c: CandidateSet,
  uniform: boolean,
  random: () => number,
  out: Int32Array,
): void {
  const n = c.count;
  if (uniform) {
    const a = Math.floor(random() * n) % n;
    let b = Math.floor(random() * (n - 1)) % (n - 1);
    if (b >= a) b++;
    out[0] = c.idx[a];
    out[1] = c.idx[b];
    return;
  }
  const first = c.weighted(endpoints, random);
  // Second draw over the remaining weight, skipping the first.
  let r = random() * (c.totalWeight - endpoints[first].weight);
  let second = -1;
  for (let k = 0; k < n; k++) {
    const i = c.idx[k];
    if (i === first) continue;
    second = i;
    r -= endpoints[i].weight;
    if (r < 0) break;
  }
  out[0] = first;
  out[1] = second;
}
