import { REFRESH_MS } from '../api.ts';
import { fmtTime } from '../format.ts';
import { useConnection } from '../hooks.ts';

/** Shown while the control plane cannot be reached; polls keep retrying underneath. */
export function ConnectionBanner() {
  const c = useConnection();
  if (c.online) return null;
  return (
    <div className="banner error" role="alert" data-testid="unreachable">
      <strong>Control plane unreachable</strong> — retrying every {REFRESH_MS / 1000} s.{' '}
      {c.lastOk ? `Showing data from ${fmtTime(c.lastOk)}.` : 'No data yet.'}
      {c.error ? <span className="muted"> ({c.error})</span> : null}
    </div>
  );
}
