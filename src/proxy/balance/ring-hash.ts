/**
 * Ring hash (Karger et al.; Envoy's ring_hash): each endpoint places points on a 32-bit
 * ring in proportion to its weight, a key goes to the first point clockwise from its hash.
 * Removing an endpoint moves only the keys that were on its points. Endpoints outside the
 * candidate set are skipped by walking further clockwise, which likewise moves only their keys.
 *
 * Points per endpoint: {@link POINTS_PER_WEIGHT} for each multiple of the lightest weight.
 * Unlike Envoy, which sizes the whole ring (min 1024) and so changes every endpoint's point
 * count whenever the set changes, a count here depends only on the endpoint's own weight
 * relative to the lightest one: with equal weights, a departure moves exactly the departed
 * endpoint's keys. The ring is capped at 2^20 points (scaled down beyond that).
 */
import type { EndpointState } from './endpoint-state.ts';
import type { CandidateSet } from './candidates.ts';
import { hash32, mix32 } from './hash.ts';
import type { Picker, PickerEnv } from './picker.ts';

/** Points for an endpoint of the lightest weight; ±1/√256 ≈ 6% share error per endpoint. */
export const POINTS_PER_WEIGHT = 256;
export const MAX_RING_SIZE = 1 << 20;

/** A sorted ring: `hashes[k]` ascending, `owners[k]` the endpoint index holding that point. */
export interface Ring {
  readonly hashes: Uint32Array;
  readonly owners: Int32Array;
}

// Owner index packed under the hash in one float64 so one typed-array sort orders both.
const OWNER_BITS = 2 ** 21;

export function buildRing(endpoints: readonly EndpointState[]): Ring {
  const n = endpoints.length;
  if (n === 0) return { hashes: new Uint32Array(0), owners: new Int32Array(0) };
  let min = Infinity;
  let units = 0;
  for (const ep of endpoints) min = Math.min(min, ep.weight);
  for (const ep of endpoints) units += ep.weight / min;
  const perUnit = Math.min(POINTS_PER_WEIGHT, MAX_RING_SIZE / units);
  const counts = endpoints.map((ep) => Math.max(1, Math.round((perUnit * ep.weight) / min)));
  const packed = new Float64Array(counts.reduce((a, b) => a + b, 0));
  let k = 0;
  for (let j = 0; j < n; j++) {
    // Point r of an endpoint: its key's hash stepped by r golden-ratio increments, then mixed;
    // no string per point, so a ring of 2^20 points builds in tens of milliseconds.
    const base = hash32(endpoints[j].key);
    for (let r = 0; r < counts[j]; r++) packed[k++] = mix32(base + Math.imul(r, 0x9e3779b9)) * OWNER_BITS + j;
  }
  packed.sort();
  const hashes = new Uint32Array(packed.length);
  const owners = new Int32Array(packed.length);
  for (let i = 0; i < packed.length; i++) {
    const owner = packed[i] % OWNER_BITS;
    owners[i] = owner;
    hashes[i] = (packed[i] - owner) / OWNER_BITS;
  }
  return { hashes, owners };
}

/** Index of the first point with hash ≥ h, wrapping to 0 past the end. */
export function ringLookup(ring: Ring, h: number): number {
  const hashes = ring.hashes;
  let lo = 0;
  let hi = hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (hashes[mid] < h) lo = mid + 1;
    else hi = mid;
  }
  return lo === hashes.length ? 0 : lo;
}

export class RingHashPicker implements Picker {
  private ring: Ring = buildRing([]);

  constructor(private readonly env: PickerEnv) {}

  rebuild(endpoints: readonly EndpointState[]): void {
    this.ring = buildRing(endpoints);
  }

  pick(endpoints: readonly EndpointState[], c: CandidateSet, hashKey: string | undefined): number {
    if (hashKey === undefined) return c.weighted(endpoints, this.env.random);
    const owners = this.ring.owners;
    const size = owners.length;
    let k = ringLookup(this.ring, hash32(hashKey));
    for (let steps = 0; steps < size; steps++) {
      const i = owners[k];
      if (c.has(endpoints[i])) return i;
      if (++k === size) k = 0;
    }
    return c.weighted(endpoints, this.env.random);
  }
}
