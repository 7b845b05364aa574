/**
 * What the rollout controller publishes, and where: everything lives in the control
 * plane's KV store, so the CLI and the dashboard read it with ordinary blocking queries
 * (`GET /v1/kv/rollouts/<ns>/<name>/status?index=N&wait=60s`) and need no new endpoint:
 *
 * - `rollouts/<ns>/<name>/status`  — RolloutStatus (JSON), rewritten on every change;
 * - `rollouts/<ns>/<name>/history` — HistoryEntry[] (JSON), one entry per revision;
 * - `rollouts/<ns>/<name>/command` — RolloutCommand (JSON) written by the CLI, consumed
 *   (deleted) by the controller;
 * - `rollouts/_controller/owner`   — the controller's single-owner lease (owner-lease.ts).
 */
import type { Rollout } from '../config/resources.ts';

export type RolloutPhase =
  | 'Initializing'
  | 'Progressing'
  | 'Paused'
  | 'Promoting'
  | 'Finalising'
  | 'Succeeded'
  | 'Failed'
  | 'RolledBack';

export const TERMINAL_PHASES: ReadonlySet<RolloutPhase> = new Set(['Succeeded', 'Failed', 'RolledBack']);

/** One check of one analysis run: what was measured against what was allowed. */
export interface CheckResult {
  /** `successRate` (percent), `p99` (ms), `requests`, or `webhook:<name>`. */
  name: string;
  value: number | null;
  threshold: number;
  pass: boolean;
  message?: string;
}

export interface AnalysisRun {
  at: number;
  /** Requests the new revision served in the interval. */
  requests: number;
  checks: CheckResult[];
  pass: boolean;
}

export interface RolloutStatus {
  namespace: string;
  name: string;
  service: string;
  strategy: 'canary' | 'blueGreen';
  phase: RolloutPhase;
  /** The revision being rolled out (1, 2, …; 0 is the stable set found running). */
  revision: number;
  stableRevision: number;
  /** Index of the current step, and how many there are (canary). */
  step: number;
  steps: number;
  /** Share of the service's traffic sent to the new revision (0..100). */
  weight: number;
  /** Failed checks so far, and how many roll back. */
  failedChecks: number;
  threshold: number;
  /** Whether the Rollout has any analysis at all (absent in statuses from older controllers). */
  analysisConfigured?: boolean;
  analysis: AnalysisRun[];
  message: string;
  /** Why it failed or rolled back. */
  reason?: string;
  instances: { stable: string[]; canary: string[] };
  startedAt: number;
  updatedAt: number;
}

export type HistoryOutcome = 'Progressing' | 'Succeeded' | 'Failed' | 'RolledBack' | 'Superseded';

export interface HistoryEntry {
  revision: number;
  /** The template this revision ran (absent for revision 0, found running). */
  template?: Rollout['spec']['template'];
  /** What changed from the previous revision, one line each (`env.ERROR_RATE: 0 → 0.05`). */
  changes: string[];
  startedAt: number;
  finishedAt?: number;
  outcome: HistoryOutcome;
  reason?: string;
}

export type RolloutAction = 'promote' | 'pause' | 'resume' | 'abort' | 'undo';

export interface RolloutCommand {
  action: RolloutAction;
  /** Unique per command: the controller acts once on each. */
  id: string;
  at: number;
  /** undo: the revision to return to (default: the previous one). */
  toRevision?: number;
}

export const rolloutKeys = {
  prefix: 'rollouts/',
  status: (ns: string, name: string) => `rollouts/${ns}/${name}/status`,
  history: (ns: string, name: string) => `rollouts/${ns}/${name}/history`,
  command: (ns: string, name: string) => `rollouts/${ns}/${name}/command`,
  owner: 'rollouts/_controller/owner',
};

/** Instance label carrying the rollout revision; the stable/canary Services select on it. */
export const REVISION_LABEL = 'hexmesh.io/revision';

/** One line per changed field of the template, `path: old → new` (as `kubectl rollout history` shows a change cause). */
export function templateChanges(prev: unknown, next: unknown, path = ''): string[] {
  if (JSON.stringify(prev) === JSON.stringify(next)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(prev) && isObj(next)) {
    const keys = [...new Set([...Object.keys(prev), ...Object.keys(next)])].sort();
    return keys.flatMap((k) => templateChanges(prev[k], next[k], path ? `${path}.${k}` : k));
  }
  const show = (v: unknown) => (v === undefined ? '(none)' : JSON.stringify(v));
  return [`${path || '(template)'}: ${show(prev)} → ${show(next)}`];
}
