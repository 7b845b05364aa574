/**
 * `GET /v1/stats/errors?service=NAME`: a service's failed requests in the window, from the
 * collector's error history (error-history.ts) — what the dashboard's "Recent errors" and
 * `hexmesh stat svc/NAME --errors` show, so errors from before a page opened (or before a
 * CLI ran) are not lost.
 *
 * Both sides of the service: its own sidecars' inbound failures (`side: server`, the
 * version and instances are the service's) and its callers' outbound failures towards it
 * (`side: client`, version and instances the caller's; proxy-made failures such as a
 * refused connection show only here). Rows with a `kind` count the responses a proxy made
 * up, by their `x-hexmesh-error` code; they are also counted in the status rows and in
 * `total`.
 */
import type { MetricsCollector } from './collector.ts';
import type { ViewMeta, ViewQuery } from './views.ts';

export interface ErrorRow {
  /** Namespace of the reporting proxies. */
  namespace: string;
  /** `server`: the service's own sidecars (inbound); `client`: its callers' (outbound). */
  side: 'server' | 'client';
  /** The calling service ('' when unknown: a server-side synthetic response). */
  src: string;
  dst: string;
  /** HTTP status ('' on a kind row). */
  status: string;
  /** gRPC status ('' when not gRPC, and on a kind row). */
  grpcStatus: string;
  /** The `x-hexmesh-error` code of a response a proxy made up ('' on a status row). */
  kind: string;
  /** The `version` label of the reporting instances ('' without one). */
  version: string;
  /** Ids of the reporting instances. */
  instances: string[];
  /** Failures in the window. */
  count: number;
  /** Epoch ms of the last scrape that counted one more (seen at most one scrape period late). */
  lastSeen: number;
}

export interface ErrorsView extends ViewMeta {
  service: string;
  namespace?: string;
  /**
   * Failed requests in the window: the status rows of the server side summed, or of the
   * client side when the callers saw more (a failure both sidecars saw is counted once).
   */
  total: number;
  /** Most recently seen first. */
  errors: ErrorRow[];
}

const SEP = '\u0000';

export function errorsView(c: MetricsCollector, q: ViewQuery & { service: string }): ErrorsView {
  const { from, to } = c.window.range(q.windowMs);
  const rows = new Map<string, ErrorRow>();
  let total = 0;
  for (const [s, n] of c.errors.counts(from, to)) {
    if (s.dst !== q.service) continue;
    if (q.namespace !== undefined && s.namespace !== q.namespace) continue;
    const side = s.direction === 'inbound' ? 'server' : 'client';
    const k = [s.namespace, side, s.src, s.status, s.grpcStatus, s.kind, s.version].join(SEP);
    let row = rows.get(k);
    if (!row) {
      row = {
        namespace: s.namespace,
        side,
        src: s.src,
        dst: s.dst,
        status: s.status,
        grpcStatus: s.grpcStatus,
        kind: s.kind,
        version: s.version,
        instances: [],
        count: 0,
        lastSeen: 0,
      };
      rows.set(k, row);
    }
    row.count += n;
    row.lastSeen = Math.max(row.lastSeen, s.lastSeen);
    if (s.instance && !row.instances.includes(s.instance)) row.instances.push(s.instance);
    if (s.kind === '' && side === 'server') total += n;
  }
  // A failure the server side did not see (its sidecar unreachable) counts from the callers'.
  let clientTotal = 0;
  for (const r of rows.values()) if (r.kind === '' && r.side === 'client') clientTotal += r.count;
  const errors = [...rows.values()].sort(
    (a, b) =>
      b.lastSeen - a.lastSeen ||
      b.count - a.count ||
      a.side.localeCompare(b.side) ||
      a.status.localeCompare(b.status),
  );
  for (const r of errors) r.instances.sort();
  return {
    source: 'control-plane',
    windowMs: q.windowMs,
    service: q.service,
    ...(q.namespace !== undefined && { namespace: q.namespace }),
    total: Math.max(total, clientTotal),
    errors,
  };
}
