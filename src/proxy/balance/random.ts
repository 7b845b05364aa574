/**
 * Weighted random: each candidate with probability weight / total. No state, no
 * coordination; the baseline the other algorithms are measured against.
 */
import type { EndpointState } from './endpoint-state.ts';
import type { CandidateSet } from './candidates.ts';
import { uniformWeights, type Picker, type PickerEnv } from './picker.ts';

export class RandomPicker implements Picker {
  private uniform = true;

  constructor(private readonly env: PickerEnv) {}

  rebuild(endpoints: readonly EndpointState[]): void {
    this.uniform = uniformWeights(endpoints);
  }

  pick(endpoints: readonly EndpointState[], c: CandidateSet): number {
    return this.uniform ? c.uniform(this.env.random) : c.weighted(endpoints, this.env.random);
  }
}
