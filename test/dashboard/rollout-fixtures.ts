/** A rollout status as the controller writes it (src/rollout/rollout-status.ts), for the browser tests. */
import type { RolloutStatus } from '../../src/rollout/rollout-status.ts';

export const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

/** A canary at 20 %, step 2 of 5, its last analysis passing; `over` replaces fields. */
export function fakeStatus(over: Partial<RolloutStatus> = {}): RolloutStatus {
  return {
    namespace: 'default',
    name: 'reviews',
    service: 'reviews',
    strategy: 'canary',
    phase: 'Progressing',
    revision: 2,
    stableRevision: 1,
    step: 1,
    steps: 5,
    weight: 20,
    failedChecks: 0,
    threshold: 2,
    analysis: [
      {
        at: T0,
        requests: 40,
        pass: true,
        checks: [
          { name: 'successRate', value: 99.5, threshold: 99, pass: true },
          { name: 'p99', value: 120, threshold: 500, pass: true },
          { name: 'requests', value: 40, threshold: 20, pass: true },
        ],
      },
    ],
    message: 'step 2/5: analysis',
    instances: { stable: ['reviews-1'], canary: ['reviews-r2-0'] },
    startedAt: T0,
    updatedAt: T0 + 1000,
    ...over,
  };
}
