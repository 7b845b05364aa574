import type { TapEvent } from '../tap.ts';
import { fmtMs } from '../format.ts';
import { LockIcon } from './lock-icon.tsx';

/** Tap events, newest first. */
export function TapTable(props: { events: TapEvent[]; empty: string }) {
  if (props.events.length === 0) return <div className="empty">{props.empty}</div>;
  return (
    <table className="tap-table" data-testid="tap-table">
      <thead>
        <tr>
          <th>time</th>
          <th>source → destination</th>
          <th>method</th>
          <th>authority</th>
          <th>path</th>
          <th>status</th>
          <th>error</th>
          <th className="num">latency</th>
          <th>tls</th>
        </tr>
      </thead>
      <tbody>
        {props.events.map((e) => (
          <tr
            key={e.seq}
            className={(e.status ?? 0) >= 500 || e.error ? 'bad' : undefined}
            data-testid="tap-row"
          >
            <td className="mono">{new Date(e.time).toLocaleTimeString([], { hour12: false })}</td>
            <td className="mono">
              {e.src || '?'} → {e.dst || '?'}
            </td>
            <td>{e.method}</td>
            <td className="mono">{e.authority}</td>
            <td className="mono path">{e.path}</td>
            <td>{e.status ?? '–'}</td>
            <td className="mono">{e.error ?? ''}</td>
            <td className="num">{fmtMs(e.latencyMs)}</td>
            <td>{e.tls ? <LockIcon title="mTLS" /> : e.tls === false ? 'plain' : ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
