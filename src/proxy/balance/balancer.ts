/**
 * The load balancer a destination's stack calls once per request (per connection for TCP).
 * One {@link Balancer} per destination: it owns the endpoints' runtime state, computes the
 * candidate set with the panic threshold on every pick (candidates.ts), and delegates the
 * choice to one algorithm (a {@link Picker}, one file each).
 *
 * Typical use from the proxy assembly:
 *
 *   const lb = createBalancer(policy?.loadBalancer, service.endpoints.map((e) => new EndpointState(e)));
 *   const key = hashKeyExtractor(policy?.loadBalancer?.hashOn);           // once per config
 *   const ep = lb.pick({ hashKey: key(req.headers, req.ctx.srcAddress) }); // per request
 *   if (!ep) throw new HexmeshError('HEXMESH_ERR_NO_HEALTHY_ENDPOINTS', ...);
 *   start(ep); ... end(ep, rttMs);
 */
import type { TrafficPolicySpec } from '../../config/resources.ts';
import { CandidateSet } from './candidates.ts';
import { DEFAULT_EWMA, type EndpointState, type EwmaParams } from './endpoint-state.ts';
import { LeastRequestPicker } from './least-request.ts';
import { MaglevPicker } from './maglev.ts';
import { PeakEwmaPicker } from './peak-ewma.ts';
import type { Picker, PickerEnv } from './picker.ts';
import { RandomPicker } from './random.ts';
import { RingHashPicker } from './ring-hash.ts';
import { RoundRobinPicker } from './round-robin.ts';

/** The `loadBalancer` block of a TrafficPolicy, as parsed. */
export type LoadBalancerSpec = NonNullable<TrafficPolicySpec['loadBalancer']>;
export type BalancerType = LoadBalancerSpec['type'];

/** Every algorithm, for conformance tests and docs. */
export const BALANCER_TYPES: readonly BalancerType[] = [
  'peakEwma',
  'roundRobin',
  'leastRequest',
  'random',
  'ringHash',
  'maglev',
];

export interface PickHint {
  /** Consistent-hash key (from `hashKeyExtractor` in hash-key.ts); ignored by the other algorithms. */
  hashKey?: string;
}

export interface Balancer {
  /** Choose an endpoint, or undefined when there is none to choose (no endpoints, or none eligible and panic disabled). */
  pick(hint?: PickHint): EndpointState | undefined;
  /**
   * Replace the endpoint set. For keys already present the existing object is kept (its
   * in-flight count, health-check result, ejection and latency survive) and its config fields
   * are refreshed from the new one; new keys are adopted as given; duplicates keep the first.
   */
  update(endpoints: readonly EndpointState[]): void;
  /** The current endpoint objects (the ones health checking and outlier detection should mutate). */
  readonly endpoints: readonly EndpointState[];
}

export interface BalancerOptions {
  /** Monotonic clock in ms; default performance.now. */
  now?: () => number;
  /** Uniform [0, 1); default Math.random. */
  random?: () => number;
}

class LoadBalancer implements Balancer {
  private list: EndpointState[] = [];
  private readonly candidates: CandidateSet;

  constructor(
    private readonly picker: Picker,
    private readonly ewma: EwmaParams,
    panicThreshold: number,
  ) {
    this.candidates = new CandidateSet(panicThreshold);
  }

  get endpoints(): readonly EndpointState[] {
    return this.list;
  }

  pick(hint?: PickHint): EndpointState | undefined {
    const list = this.list;
    const n = this.candidates.refresh(list);
    if (n === 0) return undefined;
    if (n === 1) return list[this.candidates.idx[0]];
    return list[this.picker.pick(list, this.candidates, hint?.hashKey)];
  }

  update(endpoints: readonly EndpointState[]): void {
    const previous = new Map<string, EndpointState>();
    for (const ep of this.list) previous.set(ep.key, ep);
    const seen = new Set<string>();
    const next: EndpointState[] = [];
    for (const ep of endpoints) {
      if (seen.has(ep.key)) continue;
      seen.add(ep.key);
      const kept = previous.get(ep.key);
      if (kept !== undefined) {
        if (kept !== ep) kept.refreshFrom(ep);
        next.push(kept);
      } else {
        ep.adopt(this.ewma);
        next.push(ep);
      }
    }
    this.list = next;
    this.picker.rebuild(next);
  }
}

/**
 * Build a balancer for `spec` (a TrafficPolicy's `loadBalancer`; undefined means the default,
 * P2C over peak-EWMA). Missing fields take the schema defaults, so tests may pass a partial spec.
 */
export function createBalancer(
  spec: Partial<LoadBalancerSpec> | undefined,
  endpoints: readonly EndpointState[],
  opts: BalancerOptions = {},
): Balancer {
  const env: PickerEnv = {
    now: opts.now ?? DEFAULT_EWMA.now,
    random: opts.random ?? Math.random,
  };
  const ewma: EwmaParams = {
    now: env.now,
    decayMs: spec?.decay ?? DEFAULT_EWMA.decayMs,
    defaultRttMs: spec?.defaultRtt ?? DEFAULT_EWMA.defaultRttMs,
  };
  const lb = new LoadBalancer(
    createPicker(spec?.type ?? 'peakEwma', spec, env),
    ewma,
    spec?.panicThreshold ?? 50,
  );
  lb.update(endpoints);
  return lb;
}

function createPicker(
  type: BalancerType,
  spec: Partial<LoadBalancerSpec> | undefined,
  env: PickerEnv,
): Picker {
  switch (type) {
    case 'peakEwma':
      return new PeakEwmaPicker(env);
    case 'roundRobin':
      return new RoundRobinPicker();
    case 'leastRequest':
      return new LeastRequestPicker(env, spec?.activeRequestBias ?? 1);
    case 'random':
      return new RandomPicker(env);
    case 'ringHash':
      return new RingHashPicker(env);
    case 'maglev':
      return new MaglevPicker(env);
  }
}
