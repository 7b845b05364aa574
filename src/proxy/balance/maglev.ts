/**
 * Maglev consistent hashing (Google's Maglev paper; Envoy's weighted variant). Each endpoint
 * fills slots of a 65537-entry lookup table (a prime) along its own permutation, taking turns
 * in proportion to weight; a key's endpoint is `table[hash(key) mod 65537]`. The table is
 * rebuilt when the endpoint set changes; because every endpoint walks a permutation derived
 * from its key alone, most slots keep their owner and few keys move.
 *
 * Health changes do not rebuild the table (flags change without notice): a key whose slot
 * belongs to an endpoint outside the candidate set probes the following slots, so only that
 * endpoint's keys move, spread over the others roughly by weight.
 */
import type { EndpointState } from './endpoint-state.ts';
import type { CandidateSet } from './candidates.ts';
import { hash32 } from './hash.ts';
import type { Picker, PickerEnv } from './picker.ts';

export const MAGLEV_TABLE_SIZE = 65537;

const OFFSET_SEED = 0x9e3779b9;
const SKIP_SEED = 0x7f4a7c15;

/**
 * Build the lookup table: slot → index into `endpoints` (-1 when there are none).
 * Envoy's weighting: an endpoint of weight w takes a turn in round r while r·w ≥ its
 * running target, then raises the target by the maximum weight; the heaviest endpoint
 * takes a turn every round, one of a third of that weight every third round.
 */
export function buildMaglevTable(endpoints: readonly EndpointState[], size = MAGLEV_TABLE_SIZE): Int32Array {
  const table = new Int32Array(size).fill(-1);
  const n = endpoints.length;
  if (n === 0) return table;
  const pos = new Float64Array(n);
  const skip = new Float64Array(n);
  const target = new Float64Array(n);
  let maxWeight = 0;
  for (let j = 0; j < n; j++) {
    pos[j] = hash32(endpoints[j].key, OFFSET_SEED) % size;
    skip[j] = (hash32(endpoints[j].key, SKIP_SEED) % (size - 1)) + 1;
    maxWeight = Math.max(maxWeight, endpoints[j].weight);
  }
  let filled = 0;
  for (let round = 0; filled < size; round++) {
    for (let j = 0; j < n && filled < size; j++) {
      if (round * endpoints[j].weight < target[j]) continue;
      target[j] += maxWeight;
      let c = pos[j];
      while (table[c] !== -1) c = (c + skip[j]) % size;
      table[c] = j;
      pos[j] = (c + skip[j]) % size;
      filled++;
    }
  }
  return table;
}

export class MaglevPicker implements Picker {
  private table: Int32Array = new Int32Array(0);

  constructor(private readonly env: PickerEnv) {}

  rebuild(endpoints: readonly EndpointState[]): void {
    // No endpoints, no table (pick falls through to the weighted choice, which finds none):
    // a balancer built before its endpoints arrive — or dry, to validate a policy — skips
    // filling 65,537 slots for nothing.
    this.table = endpoints.length ? buildMaglevTable(endpoints) : new Int32Array(0);
  }

  pick(endpoints: readonly EndpointState[], c: CandidateSet, hashKey: string | undefined): number {
    // As Envoy: no key, no affinity; spread at random.
    if (hashKey === undefined) return c.weighted(endpoints, this.env.random);
    const table = this.table;
    const size = table.length;
    let slot = hash32(hashKey) % size;
    for (let probes = 0; probes < size; probes++) {
      const i = table[slot];
      if (c.has(endpoints[i])) return i;
      if (++slot === size) slot = 0;
    }
    // Only when every candidate lost all its slots to much heavier endpoints.
    return c.weighted(endpoints, this.env.random);
  }
}
