/** Shared by this folder's tests: a seeded PRNG and endpoint builders. Not used by production code. */
import { EndpointState, isEligible } from './endpoint-state.ts';
import type { Balancer } from './balancer.ts';

/** mulberry32: a small seeded PRNG so statistical tests are reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Endpoints 10.0.0.1:8080 … with the given weights. */
export function endpoints(weights: readonly number[]): EndpointState[] {
  return weights.map((weight, i) => new EndpointState({ address: `10.0.0.${i + 1}`, port: 8080, weight }));
}

/** `n` picks; counts per endpoint key. `key(i)` gives the hash key of pick i. */
export function tally(lb: Balancer, n: number, key?: (i: number) => string | undefined): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const ep = lb.pick({ hashKey: key?.(i) });
    const k = ep === undefined ? 'none' : ep.key;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/** Whether panic mode applies to `eps` at `threshold` percent (the rule the balancer must follow). */
export function inPanic(eps: readonly EndpointState[], threshold: number): boolean {
  const eligible = eps.filter(isEligible).length;
  return threshold > 0 && eligible * 100 < threshold * eps.length;
}
