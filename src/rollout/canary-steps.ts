/**
 * A canary strategy as one list of steps. `stepWeight`/`maxWeight` expand as Flagger's:
 * 5/50 → setWeight 5, analysis, setWeight 10, analysis, …, setWeight 50, analysis, then
 * promote. Explicit steps are taken as written; a `setWeight` step with an analysis
 * configured at the strategy level is followed by one interval of analysis (as Flagger
 * analyses at every weight).
 */
import type { Rollout, RolloutAnalysis } from '../config/resources.ts';

export type Step =
  | { kind: 'setWeight'; weight: number }
  | { kind: 'pause'; durationMs?: number }
  | { kind: 'analysis'; analysis: RolloutAnalysis };

type Canary = NonNullable<Rollout['spec']['strategy']['canary']>;

const DEFAULT_ANALYSIS: RolloutAnalysis = { minRequests: 1, threshold: 1, iterations: 1, webhooks: [] };

/** The steps to walk for a canary strategy. */
export function canarySteps(c: Canary): Step[] {
  const base = c.analysis;
  const out: Step[] = [];
  if (c.steps) {
    for (const s of c.steps) {
      if (s.setWeight !== undefined) {
        out.push({ kind: 'setWeight', weight: s.setWeight });
        const next = c.steps[c.steps.indexOf(s) + 1];
        if (base && next?.analysis === undefined) out.push({ kind: 'analysis', analysis: base });
      } else if (s.pause !== undefined)
        out.push(
          s.pause.duration !== undefined
            ? { kind: 'pause', durationMs: s.pause.duration }
            : { kind: 'pause' },
        );
      else if (s.analysis !== undefined)
        out.push({
          kind: 'analysis',
          analysis: { ...DEFAULT_ANALYSIS, ...base, ...stripUndefined(s.analysis) },
        });
    }
    return out;
  }
  const step = c.stepWeight ?? 10;
  const max = c.maxWeight ?? 50;
  for (let w = step; w <= max; w += step) {
    out.push({ kind: 'setWeight', weight: w });
    if (base) out.push({ kind: 'analysis', analysis: base });
  }
  if (out.length === 0) out.push({ kind: 'setWeight', weight: max });
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
