/**
 * Rollouts: phase, traffic weight as a progress bar, step of steps, the last analysis run
 * check by check (value against threshold, pass), the failure reason and recent history —
 * what `hexmesh rollout status --watch` prints. Live: the controller's KV records are
 * followed with blocking queries, so a change shows as soon as the controller writes it.
 *
 * Props (the pages' contract): without `namespace`/`service`, every rollout (the Rollouts
 * page); with them, only that service's (the service page's Rollouts section).
 */
import { useState } from 'react';
import { putJson, type StoredResource } from '../api.ts';
import { fmtTime } from '../format.ts';
import { apiProblem, useBlocking, usePoll } from '../hooks.ts';
import {
  checkBound,
  fmtCheckValue,
  phaseTone,
  rolloutViews,
  stepText,
  TERMINAL,
  type AnalysisRun,
  type HistoryEntry,
  type KvEntry,
  type RolloutStatus,
  type RolloutView,
} from './rollout-data.ts';

export interface RolloutsPanelProps {
  namespace?: string;
  service?: string;
}

/** Recent history rows shown per rollout (newest first). */
const HISTORY_ROWS = 5;
/** Earlier analysis runs shown as pass/fail marks. */
const RUN_MARKS = 12;

export function RolloutsPanel(props: RolloutsPanelProps) {
  const kv = useBlocking<KvEntry[]>('/v1/kv/rollouts/?recurse=1');
  const resources = usePoll<StoredResource[]>(
    `/v1/resources?kind=Rollout${props.namespace ? `&namespace=${encodeURIComponent(props.namespace)}` : ''}`,
    10_000,
  );
  const all = rolloutViews(kv.data, resources.data);
  const shown = all.filter(
    (r) =>
      (props.namespace === undefined || r.namespace === props.namespace) &&
      (props.service === undefined || r.service === props.service),
  );
  // A viewer may list Rollout resources but not read KV values: say what is missing.
  const kvProblem = kv.data === undefined ? apiProblem(kv.error) : undefined;
  const resProblem = resources.data === undefined ? apiProblem(resources.error) : undefined;
  const loading = kv.data === undefined && resources.data === undefined && !kvProblem && !resProblem;

  return (
    <div className="rollouts" data-testid="rollouts">
      {kvProblem ? (
        <div className="notice warn" data-testid="rollouts-problem">
          Rollout status not readable: {kvProblem}
        </div>
      ) : null}
      {resProblem && !kvProblem ? <div className="notice warn">{resProblem}</div> : null}
      {shown.length > 0 ? (
        shown.map((r) => <RolloutCard key={`${r.namespace}/${r.name}`} r={r} />)
      ) : loading ? (
        <div className="empty">Loading…</div>
      ) : (
        <div className="empty" data-testid="rollouts-empty">
          No rollouts{props.service ? ` for ${props.service}` : ''}. Apply a Rollout resource (or{' '}
          <span className="mono">hexmesh rollout start -f FILE</span>) to see its steps and traffic split
          here.
        </div>
      )}
    </div>
  );
}

function RolloutCard({ r }: { r: RolloutView }) {
  const s = r.status;
  return (
    <article
      className="rollout"
      data-testid="rollout"
      data-rollout={`${r.namespace}/${r.name}`}
      data-phase={s?.phase ?? 'Pending'}
    >
      <div className="rollout-head">
        <strong className="rollout-name">{r.name}</strong>
        <span className="muted">{r.namespace}</span>
        {r.service ? <span className="muted">service {r.service}</span> : null}
        {s ? <span className="muted">{s.strategy === 'blueGreen' ? 'blue/green' : 'canary'}</span> : null}
        <span className={`pill ${phaseTone(s?.phase ?? '')}`} data-testid="rollout-phase">
          {s?.phase ?? 'Pending'}
        </span>
        {s ? (
          <span className="muted small">
            revision {s.revision} (stable {s.stableRevision}) · updated {fmtTime(s.updatedAt)}
          </span>
        ) : null}
      </div>
      {s ? <Actions r={r} s={s} /> : null}
      {s ? (
        <StatusBody s={s} />
      ) : (
        <div className="muted small">
          {r.declared
            ? 'Waiting for the rollout controller (it runs in hexmesh up).'
            : 'No status recorded yet.'}
        </div>
      )}
      {r.history.length > 0 ? <History entries={r.history} /> : null}
    </article>
  );
}

/**
 * Promote, abort and undo, as `hexmesh rollout promote|abort|undo`: a command written to the
 * rollout's KV key for the controller. A write: a viewer's token is refused (403) and the
 * API's message is shown once, under the buttons, until the next click.
 */
function Actions({ r, s }: { r: RolloutView; s: RolloutStatus }) {
  const [note, setNote] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const running = !TERMINAL.has(s.phase);
  const send = async (action: 'promote' | 'abort' | 'undo') => {
    if (action !== 'promote' && !window.confirm(`${action} rollout ${r.namespace}/${r.name}?`)) return;
    setBusy(true);
    try {
      const id = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
      await putJson(
        `/v1/kv/rollouts/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}/command`,
        {
          action,
          id,
          at: Date.now(),
        },
      );
      setNote({ ok: true, text: `${action} requested` });
    } catch (err) {
      const msg = (err as Error).message;
      const status = (err as { status?: number }).status;
      setNote({
        ok: false,
        text: `${action} refused: ${msg}${status === 403 ? ' — an operator token can (hexmesh auth token create NAME --role operator)' : ''}`,
      });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="rollout-actions" data-testid="rollout-actions">
      <button
        type="button"
        disabled={busy || !running}
        onClick={() => void send('promote')}
        data-testid="rollout-promote"
      >
        Promote
      </button>
      <button
        type="button"
        disabled={busy || !running}
        onClick={() => void send('abort')}
        data-testid="rollout-abort"
      >
        Abort
      </button>
      <button type="button" disabled={busy} onClick={() => void send('undo')} data-testid="rollout-undo">
        Undo
      </button>
      {s.phase === 'Paused' ? <span className="muted small">paused: Promote finishes it now</span> : null}
      {note ? (
        <span
          className={`small ${note.ok ? 'muted' : 'bad'}`}
          role={note.ok ? 'status' : 'alert'}
          data-testid="rollout-action-note"
        >
          {note.text}
        </span>
      ) : null}
    </div>
  );
}

function StatusBody({ s }: { s: RolloutStatus }) {
  const weight = Math.max(0, Math.min(100, s.weight));
  const last = s.analysis.at(-1);
  return (
    <>
      <div className="rollout-progress">
        <div
          className={`progress ${phaseTone(s.phase)}`}
          role="progressbar"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={weight}
          aria-label="traffic to the new revision"
          data-testid="rollout-bar"
        >
          <div className="progress-fill" style={{ width: `${weight}%` }} />
        </div>
        <span className="rollout-figure">
          <span data-testid="rollout-weight">{weight}%</span>
          <span className="muted small"> to r{s.revision}</span>
        </span>
        <span className="rollout-figure">
          <span className="muted small">step </span>
          <span data-testid="rollout-step">{stepText(s)}</span>
        </span>
        <span className="rollout-figure">
          <span className="muted small">
            {s.analysisConfigured === false ? 'analysis ' : 'failed analyses '}
          </span>
          <span data-testid="rollout-failed" className={s.failedChecks > 0 ? 'bad' : undefined}>
            {s.analysisConfigured === false ? 'none configured' : `${s.failedChecks}/${s.threshold}`}
          </span>
        </span>
      </div>
      {s.message ? (
        <div className="rollout-message" data-testid="rollout-message">
          {s.message}
        </div>
      ) : null}
      {s.reason ? (
        <div className="notice error" data-testid="rollout-reason">
          <strong>{s.phase}:</strong> {s.reason}
        </div>
      ) : null}
      {last ? <Analysis last={last} runs={s.analysis} /> : null}
      <div className="muted small rollout-instances">
        stable: <span className="mono">{s.instances.stable.join(', ') || '–'}</span> · new:{' '}
        <span className="mono">{s.instances.canary.join(', ') || '–'}</span>
      </div>
    </>
  );
}

function Analysis({ last, runs }: { last: AnalysisRun; runs: AnalysisRun[] }) {
  return (
    <div className="rollout-analysis">
      <div className="small">
        Last analysis <span className="muted">{fmtTime(last.at)}</span>{' '}
        <span className={`pill ${last.pass ? 'healthy' : 'failing'}`} data-testid="analysis-result">
          {last.pass ? 'pass' : 'fail'}
        </span>{' '}
        <span className="muted">{last.requests} requests</span>{' '}
        <span className="runs" title="earlier analysis runs, oldest first">
          {runs.slice(-RUN_MARKS).map((run) => (
            <span key={run.at} className={`run ${run.pass ? 'pass' : 'fail'}`} />
          ))}
        </span>
      </div>
      <table className="checks" data-testid="rollout-checks">
        <thead>
          <tr>
            <th>check</th>
            <th className="num">value</th>
            <th className="num">threshold</th>
            <th>result</th>
          </tr>
        </thead>
        <tbody>
          {last.checks.map((c) => (
            <tr
              key={c.name}
              data-check={c.name}
              data-pass={String(c.pass)}
              className={c.pass ? undefined : 'bad'}
            >
              <td className="mono">{c.name}</td>
              <td className="num">{fmtCheckValue(c.name, c.value)}</td>
              <td className="num">{checkBound(c)}</td>
              <td>
                {c.pass ? '✓ pass' : '✗ fail'}
                {c.message ? <span className="muted"> {c.message}</span> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function History({ entries }: { entries: HistoryEntry[] }) {
  const rows = [...entries].sort((a, b) => b.revision - a.revision).slice(0, HISTORY_ROWS);
  return (
    <details className="rollout-history" open>
      <summary className="small">History</summary>
      <table data-testid="rollout-history">
        <thead>
          <tr>
            <th className="num">revision</th>
            <th>outcome</th>
            <th>started</th>
            <th>finished</th>
            <th>changes</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((h) => (
            <tr key={h.revision} data-revision={h.revision}>
              <td className="num">{h.revision}</td>
              <td>
                <span className={`pill ${phaseTone(h.outcome)}`}>{h.outcome}</span>
                {h.reason ? <div className="muted small">{h.reason}</div> : null}
              </td>
              <td className="muted">{fmtTime(h.startedAt)}</td>
              <td className="muted">{fmtTime(h.finishedAt)}</td>
              <td className="mono small">
                {h.changes.length === 0
                  ? h.revision === 0
                    ? 'found running'
                    : '–'
                  : h.changes.slice(0, 4).map((c) => <div key={c}>{c}</div>)}
                {h.changes.length > 4 ? <div className="muted">+{h.changes.length - 4} more</div> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
