/**
 * Rollouts as the dashboard reads them: the controller's status and history from the KV
 * store (`rollouts/<ns>/<name>/status|history`, shapes of src/rollout/rollout-status.ts,
 * imported as types only, so no server code enters the bundle), joined with the
 * `Rollout` resources so a rollout the controller has not picked up yet is listed too.
 */
import type { StoredResource } from '../api.ts';

export type {
  RolloutPhase,
  CheckResult,
  AnalysisRun,
  RolloutStatus,
  HistoryEntry,
} from '../../../src/rollout/rollout-status.ts';
import type { CheckResult, RolloutStatus, HistoryEntry } from '../../../src/rollout/rollout-status.ts';

export interface KvEntry {
  key: string;
  value: string;
  modRevision: number;
}

/** One rollout as the panel shows it. */
export interface RolloutView {
  namespace: string;
  name: string;
  /** From the status, else from the resource's `spec.service`. */
  service: string | undefined;
  status?: RolloutStatus;
  history: HistoryEntry[];
  /** The resource exists (false: only the controller's records remain). */
  declared: boolean;
}

export const TERMINAL: ReadonlySet<string> = new Set(['Succeeded', 'Failed', 'RolledBack']);

function parse<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined; // a half-written or foreign value: skip it rather than break the page
  }
}

/** KV entries under `rollouts/` and Rollout resources → one view per rollout, sorted by namespace/name. */
export function rolloutViews(
  entries: readonly KvEntry[] | undefined,
  resources: readonly StoredResource[] | undefined,
): RolloutView[] {
  const byId = new Map<string, RolloutView>();
  const get = (namespace: string, name: string): RolloutView => {
    const id = `${namespace}/${name}`;
    let v = byId.get(id);
    if (!v) {
      v = { namespace, name, service: undefined, history: [], declared: false };
      byId.set(id, v);
    }
    return v;
  };
  for (const r of resources ?? []) {
    if (r.kind !== 'Rollout') continue;
    const v = get(r.metadata.namespace, r.metadata.name);
    v.declared = true;
    if (typeof r.spec?.service === 'string') v.service = r.spec.service;
  }
  for (const e of entries ?? []) {
    const parts = e.key.split('/');
    // rollouts/<ns>/<name>/<what>; rollouts/_controller/owner is the controller's lease.
    if (parts.length !== 4 || parts[0] !== 'rollouts' || parts[1].startsWith('_')) continue;
    const [, ns, name, what] = parts;
    if (what === 'status') {
      const s = parse<RolloutStatus>(e.value);
      if (!s || typeof s !== 'object') continue;
      const v = get(ns, name);
      v.status = s;
      if (typeof s.service === 'string') v.service = s.service;
    } else if (what === 'history') {
      const h = parse<HistoryEntry[]>(e.value);
      if (Array.isArray(h)) get(ns, name).history = h;
    }
  }
  return [...byId.values()].sort((a, b) =>
    a.namespace === b.namespace ? a.name.localeCompare(b.name) : a.namespace.localeCompare(b.namespace),
  );
}

/** How a check's value compares with its threshold, as text (`≥ 99%`, `≤ 500ms`). */
export function checkBound(c: CheckResult): string {
  if (c.name === 'p99') return `≤ ${fmtCheckValue(c.name, c.threshold)}`;
  if (c.name.startsWith('webhook:')) return 'ok';
  return `≥ ${fmtCheckValue(c.name, c.threshold)}`;
}

export function fmtCheckValue(name: string, v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '–';
  if (name === 'successRate') return `${Number(v.toFixed(2))}%`;
  if (name === 'p99') return v >= 1000 ? `${(v / 1000).toFixed(2)}s` : `${Math.round(v)}ms`;
  return String(Number(v.toFixed(2)));
}

/** The step shown to people: 1-based, capped at the count (`3/5`), `–` without steps. */
export function stepText(s: Pick<RolloutStatus, 'step' | 'steps'>): string {
  return s.steps ? `${Math.min(s.step + 1, s.steps)}/${s.steps}` : '–';
}

/** The pill colour of a phase. */
export function phaseTone(phase: string): string {
  if (phase === 'Succeeded') return 'healthy';
  if (phase === 'Failed' || phase === 'RolledBack' || phase === 'Superseded') return 'failing';
  if (phase === 'Paused') return 'warning';
  return 'idle';
}
