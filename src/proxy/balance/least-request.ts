/**
 * Least request (Envoy). With equal weights: power of two choices on in-flight requests,
 * the one with fewer wins (ties go to the first draw). With unequal weights, as Envoy, each
 * candidate's share is `weight / (active + 1)^bias`: drawn at random in proportion to that
 * effective weight (Envoy uses an EDF schedule; the random draw is its stateless counterpart).
 * bias 0 turns it into weighted random; larger biases push harder away from busy endpoints.
 */
import type { EndpointState } from './endpoint-state.ts';
import type { CandidateSet } from './candidates.ts';
import { drawTwo, uniformWeights, type Picker, type PickerEnv } from './picker.ts';

/** Envoy's effective weight for least request. */
export function effectiveWeight(ep: EndpointState, bias: number): number {
  if (bias === 1) return ep.weight / (ep.active + 1);
  if (bias === 0) return ep.weight;
  return ep.weight / Math.pow(ep.active + 1, bias);
}

export class LeastRequestPicker implements Picker {
  private uniform = true;
  private readonly two = new Int32Array(2);

  /** @param bias active request bias (Envoy `active_request_bias`, default 1). */
  constructor(
    private readonly env: PickerEnv,
    private readonly bias: number,
  ) {}

  rebuild(endpoints: readonly EndpointState[]): void {
    this.uniform = uniformWeights(endpoints);
  }

  pick(endpoints: readonly EndpointState[], c: CandidateSet): number {
    if (this.uniform) {
      drawTwo(endpoints, c, true, this.env.random, this.two);
      const a = this.two[0];
      const b = this.two[1];
      return endpoints[b].active < endpoints[a].active ? b : a;
    }
    let total = 0;
    for (let k = 0; k < c.count; k++) total += effectiveWeight(endpoints[c.idx[k]], this.bias);
    let r = this.env.random() * total;
    const last = c.count - 1;
    for (let k = 0; k < last; k++) {
      r -= effectiveWeight(endpoints[c.idx[k]], this.bias);
      if (r < 0) return c.idx[k];
    }
    return c.idx[last];
  }
}
