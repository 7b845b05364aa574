import type { TapEvent } from '../tap.ts';
import { fmtMs } from '../format.ts';
import { LockIcon } from './lock-icon.tsx';
import { grpcStatusText } from '../../../src/telemetry/tap/grpc-status.ts';

/** A gRPC status as `hexmesh tap` shows it: `14 UNAVAILABLE`. */
const grpcCell = (v: string | undefined): string => (v === undefined ? '–' : grpcStatusText(v));
/** A failure as the CLI counts one: 5xx, a proxy error, or a gRPC status other than OK. */
const failed = (e: TapEvent) =>
  (e.status ?? 0) >= 500 || e.error !== undefined || (e.grpcStatus !== undefined && e.grpcStatus !== '0');

/**
 * Tap events, newest first. Columns and their names follow `hexmesh tap` (docs/cli.md):
 * direction, source, destination, …, status, grpc.
 */
export function TapTable(props: { events: TapEvent[]; empty: string }) {
  if (props.events.length === 0) return <div className="empty">{props.empty}</div>;
  return (
    <table className="tap-table" data-testid="tap-table">
      <thead>
        <tr>
          <th>time</th>
          <th>direction</th>
          <th>source</th>
          <th>destination</th>
          <th>method</th>
          <th>authority</th>
          <th>path</th>
          <th>status</th>
          <th>grpc</th>
          <th>error</th>
          <th className="num">latency</th>
          <th>tls</th>
        </tr>
      </thead>
      <tbody>
        {props.events.map((e) => (
          <tr key={e.seq} className={failed(e) ? 'bad' : undefined} data-testid="tap-row">
            <td className="mono">{new Date(e.time).toLocaleTimeString([], { hour12: false })}</td>
            <td>{e.direction ?? '–'}</td>
            <td className="mono" title={e.direction === 'inbound' ? e.identity : undefined}>
              {e.src || '?'}
            </td>
            <td className="mono" title={e.direction === 'outbound' ? e.identity : undefined}>
              {e.dst || '?'}
            </td>
            <td>{e.method}</td>
            <td className="mono">{e.authority}</td>
            <td className="mono path">{e.path}</td>
            <td>{e.status ?? '–'}</td>
            <td className="mono">{grpcCell(e.grpcStatus)}</td>
            <td className="mono">{e.error ?? ''}</td>
            <td className="num">{fmtMs(e.latencyMs)}</td>
            <td>{e.tls ? <LockIcon title="mTLS" /> : e.tls === false ? 'plain' : ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
