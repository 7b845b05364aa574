/**
 * One analysis run: the metric checks of an interval's Measurement, then the `rollout`
 * webhooks. Pure apart from the webhooks, so the rules are tested on their own.
 */
import type { RolloutAnalysis } from '../config/resources.ts';
import type { Measurement } from './revision-metrics.ts';
import type { AnalysisRun, CheckResult } from './rollout-status.ts';
import { callWebhook, type WebhookPayload } from './webhooks.ts';

/**
 * Metric checks. No traffic fails the request check (and the rate and latency checks
 * have nothing to judge, so they fail too): a canary nobody called proved nothing.
 */
export function metricChecks(a: RolloutAnalysis, m: Measurement): CheckResult[] {
  const checks: CheckResult[] = [];
  const enough = m.requests >= a.minRequests && m.requests > 0;
  checks.push({
    name: 'requests',
    value: m.requests,
    threshold: a.minRequests,
    pass: enough,
    ...(enough
      ? {}
      : { message: `${m.requests} requests in the interval, at least ${Math.max(1, a.minRequests)} needed` }),
  });
  if (a.successRate) {
    const pass = m.successRate !== null && m.successRate >= a.successRate.min;
    checks.push({
      name: 'successRate',
      value: m.successRate,
      threshold: a.successRate.min,
      pass,
      ...(pass ? {} : { message: `success rate ${fmt(m.successRate, '%')} below ${a.successRate.min}%` }),
    });
  }
  if (a.p99) {
    const pass = m.p99Ms !== null && m.p99Ms <= a.p99.max;
    checks.push({
      name: 'p99',
      value: m.p99Ms,
      threshold: a.p99.max,
      pass,
      ...(pass ? {} : { message: `p99 ${fmt(m.p99Ms, ' ms')} above ${a.p99.max} ms` }),
    });
  }
  return checks;
}

/**
 * Intervals in a row whose metrics could not be read (Measurement.unreachable) before the
 * analysis fails. Such an interval is measured again rather than judged: a scrape that timed
 * out on a busy host is not a canary serving no traffic (Argo Rollouts' consecutiveErrorLimit
 * is 4 as well). A sidecar that stays unreadable fails the analysis with that reason.
 */
export const MAX_UNMEASURED_INTERVALS = 4;

/**
 * What to do with an interval whose measurement left sidecars out: measure again
 * (`undefined`), or fail with the returned reason once `inARow` reaches the limit.
 */
export function unmeasuredVerdict(m: Measurement, inARow: number): string | undefined {
  if (inARow < MAX_UNMEASURED_INTERVALS) return undefined;
  return (
    `analysis: the new revision's metrics could not be read in ${inARow} intervals in a row ` +
    `(admin ${m.unreachable.join(', ')})`
  );
}

/** Run the metric checks and the `rollout` webhooks for one interval. */
export async function runAnalysis(
  a: RolloutAnalysis,
  m: Measurement,
  payload: WebhookPayload,
  now: () => number = Date.now,
): Promise<AnalysisRun> {
  const checks = metricChecks(a, m);
  for (const h of a.webhooks.filter((w) => w.type === 'rollout')) checks.push(await callWebhook(h, payload));
  return { at: now(), requests: m.requests, checks, pass: checks.every((c) => c.pass) };
}

function fmt(v: number | null, unit: string): string {
  return v === null ? 'n/a (no traffic)' : `${v}${unit}`;
}
