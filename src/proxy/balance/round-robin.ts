/**
 * Smooth weighted round robin (nginx): each pick, every candidate's `current` grows by its
 * weight, the largest wins and pays back the total. Weights 5,1,1 give a a b a c a a, not
 * a a a a a b c, so a heavy endpoint never gets a burst. Endpoints outside the candidate set
 * are skipped and keep their `current`, as nginx skips peers that are down.
 */
import type { EndpointState } from './endpoint-state.ts';
import type { CandidateSet } from './candidates.ts';
import type { Picker } from './picker.ts';

export class RoundRobinPicker implements Picker {
  private current: Float64Array = new Float64Array(0);
  private keys: string[] = [];

  rebuild(endpoints: readonly EndpointState[]): void {
    // Carry `current` over by key so frequent endpoint churn does not restart the cycle
    // (which would keep favouring the first endpoints).
    const previous = new Map<string, number>();
    for (let i = 0; i < this.keys.length; i++) previous.set(this.keys[i], this.current[i]);
    this.current = new Float64Array(endpoints.length);
    this.keys = endpoints.map((e) => e.key);
    for (let i = 0; i < endpoints.length; i++) this.current[i] = previous.get(this.keys[i]) ?? 0;
  }

  pick(endpoints: readonly EndpointState[], c: CandidateSet): number {
    const cur = this.current;
    let best = -1;
    let bestValue = -Infinity;
    for (let k = 0; k < c.count; k++) {
      const i = c.idx[k];
      const v = (cur[i] += endpoints[i].weight);
      if (v > bestValue) {
        bestValue = v;
        best = i;
      }
    }
    cur[best] -= c.totalWeight;
    return best;
  }
}
