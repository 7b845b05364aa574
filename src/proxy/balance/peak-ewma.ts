/**
 * Power of two choices over peak-EWMA latency (Linkerd, Finagle): draw two candidates, send
 * to the one with the lower `cost × (pending + 1)`, where cost is the endpoint's peak-EWMA
 * round-trip estimate (see endpoint-state.ts). Latency-aware without any global view, and
 * the `pending + 1` factor makes in-flight work count immediately, before any RTT is known.
 */
import { decayedCost, type EndpointState } from './endpoint-state.ts';
import type { CandidateSet } from './candidates.ts';
import { drawTwo, uniformWeights, type Picker, type PickerEnv } from './picker.ts';

/** The load P2C compares: decayed peak-EWMA cost times (in-flight + 1). */
export function peakEwmaLoad(ep: EndpointState, now: number): number {
  return decayedCost(ep, now) * (ep.active + 1);
}

export class PeakEwmaPicker implements Picker {
  private uniform = true;
  private readonly two = new Int32Array(2);

  constructor(private readonly env: PickerEnv) {}

  rebuild(endpoints: readonly EndpointState[]): void {
    this.uniform = uniformWeights(endpoints);
  }

  pick(endpoints: readonly EndpointState[], c: CandidateSet): number {
    drawTwo(endpoints, c, this.uniform, this.env.random, this.two);
    const now = this.env.now();
    const a = this.two[0];
    const b = this.two[1];
    return peakEwmaLoad(endpoints[b], now) < peakEwmaLoad(endpoints[a], now) ? b : a;
  }
}
