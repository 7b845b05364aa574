import { useCallback, useState } from 'react';
import type {
  ErrorsView,
  Instance,
  RoutesView,
  ServicesView,
  StoredResource,
  TargetsView,
  TimeseriesView,
} from '../api.ts';
import { Chart } from '../components/chart.tsx';
import { TapTable } from '../components/tap-table.tsx';
import { HEALTH_LABEL, fmtMs, fmtPercent, fmtRps, fmtTime, serviceHealth } from '../format.ts';
import { apiProblem, usePoll } from '../hooks.ts';
import { RolloutsPanel } from '../rollouts/rollouts-panel.tsx';
import type { TapEvent } from '../tap.ts';
import { useTap } from '../use-tap.ts';

/**
 * The page's one time window: the headline figures, the version/instance split, the routes
 * and every chart cover the same span, named next to the selector and on each figure.
 */
const WINDOWS = [
  { label: '1m', window: '1m', step: '5s' },
  { label: '5m', window: '5m', step: '5s' },
  { label: '15m', window: '15m', step: '10s' },
  { label: '1h', window: '1h', step: '30s' },
];
type Split = 'version' | 'instance';
const SUCCESS_RANGE: [number, number] = [0, 1];
const isError = (e: TapEvent) => (e.status ?? 0) >= 500 || e.error !== undefined;

/** Whether a resource is about this service: a Service of that name, or a route/policy naming it. */
function concerns(r: StoredResource, service: string): boolean {
  if (r.kind === 'Service') return r.metadata.name === service;
  const spec = r.spec ?? {};
  const refs = [
    ...((spec.parentRefs as { name?: string }[] | undefined) ?? []),
    ...((spec.targetRefs as { name?: string }[] | undefined) ?? []),
    ...(spec.targetRef ? [spec.targetRef as { name?: string }] : []),
  ];
  if (refs.some((x) => x?.name === service)) return true;
  // A policy without a target applies to the whole namespace.
  return /Policy|Authentication/.test(r.kind) && !spec.targetRef && !spec.targetRefs;
}

export function ServicePage(props: { namespace: string; service: string }) {
  const { namespace: ns, service } = props;
  const q = `service=${encodeURIComponent(service)}&namespace=${encodeURIComponent(ns)}`;
  const [win, setWin] = useState(WINDOWS[1]);
  const [split, setSplit] = useState<Split>('version');
  const stat = usePoll<ServicesView>(`/v1/stats/services?window=${win.window}&${q}`);
  const parts = usePoll<ServicesView>(`/v1/stats/services?window=${win.window}&${q}&by=${split}`);
  const ts = (metric: string) =>
    `/v1/stats/timeseries?${q}&metric=${metric}&window=${win.window}&step=${win.step}`;
  const rps = usePoll<TimeseriesView>(ts('rps'));
  const success = usePoll<TimeseriesView>(ts('success'));
  const p99 = usePoll<TimeseriesView>(ts('p99'));
  const instances = usePoll<Instance[]>(
    `/v1/catalog/service/${encodeURIComponent(ns)}/${encodeURIComponent(service)}`,
  );
  const targets = usePoll<TargetsView>('/v1/stats/targets');
  const routes = usePoll<RoutesView>(`/v1/stats/routes?window=${win.window}&${q}`);
  const history = usePoll<ErrorsView>(`/v1/stats/errors?window=${win.window}&${q}`);
  const resources = usePoll<StoredResource[]>(`/v1/resources?namespace=${encodeURIComponent(ns)}`, 10_000);
  const accept = useCallback(isError, []);
  const errors = useTap({ service, namespace: ns }, { keep: 20, accept });

  const s = stat.data?.services.find((x) => x.service === service && x.namespace === ns);
  const health = s ? serviceHealth(s) : undefined;
  const staleIds = new Set((targets.data?.targets ?? []).filter((t) => t.stale).map((t) => t.id));
  const related = (resources.data ?? []).filter((r) => concerns(r, service));
  const problem = apiProblem(stat.error);
  const rows = (parts.data?.services ?? []).filter((x) => x.service === service && x.namespace === ns);

  return (
    <section className="page" data-testid="service-page">
      <h1>
        {service} <span className="muted">{ns}</span>{' '}
        {health ? <span className={`pill ${health}`}>{HEALTH_LABEL[health]}</span> : null}
        <span className="muted small"> updated {fmtTime(stat.updatedAt)}</span>
      </h1>
      <div className="window-bar" data-testid="window">
        <span className="muted small">time window</span>{' '}
        <span className="windows">
          {WINDOWS.map((w) => (
            <button
              key={w.label}
              className={w === win ? 'on' : undefined}
              aria-pressed={w === win}
              onClick={() => setWin(w)}
            >
              {w.label}
            </button>
          ))}
        </span>{' '}
        <span className="muted small">figures, versions, routes, charts and errors: last {win.label}</span>
      </div>
      {problem ? <div className="notice warn">{problem}</div> : null}
      <div className="data">
        <div className="figures" data-testid="figures">
          <Figure label={`success (${win.label})`} value={fmtPercent(s?.successRate)} />
          <Figure label={`rps (${win.label})`} value={s ? fmtRps(s.rps) : '–'} />
          <Figure label={`p50 (${win.label})`} value={fmtMs(s?.latencyMs.p50)} />
          <Figure label={`p95 (${win.label})`} value={fmtMs(s?.latencyMs.p95)} />
          <Figure label={`p99 (${win.label})`} value={fmtMs(s?.latencyMs.p99)} />
          <Figure label={`mTLS (${win.label})`} value={fmtPercent(s?.tlsPercent, false)} />
          <Figure
            label="instances"
            value={s ? (s.stale ? `${s.instances - s.stale}/${s.instances}` : String(s.instances)) : '–'}
          />
        </div>

        <h2>
          By {split}{' '}
          <span className="windows" data-testid="split-select">
            {(['version', 'instance'] as const).map((b) => (
              <button
                key={b}
                className={b === split ? 'on' : undefined}
                aria-pressed={b === split}
                onClick={() => setSplit(b)}
              >
                {b}
              </button>
            ))}
          </span>{' '}
          <span className="muted small">last {win.label}</span>
        </h2>
        {apiProblem(parts.error) ? (
          <div className="notice warn">{apiProblem(parts.error)}</div>
        ) : rows.length > 0 ? (
          <table data-testid="split">
            <thead>
              <tr>
                <th>{split}</th>
                <th className="num">instances</th>
                <th className="num">requests</th>
                <th className="num">rps</th>
                <th className="num">success</th>
                <th className="num">p50</th>
                <th className="num">p95</th>
                <th className="num">p99</th>
                <th className="num">mTLS</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => {
                const part = r[split] ?? '';
                return (
                  <tr key={part} data-part={part}>
                    <td className="mono">{part || '(none)'}</td>
                    <td className="num">
                      {r.stale ? `${r.instances - r.stale}/${r.instances}` : r.instances}
                    </td>
                    <td className="num">{r.requests}</td>
                    <td className="num">{fmtRps(r.rps)}</td>
                    <td className="num">{fmtPercent(r.successRate)}</td>
                    <td className="num">{fmtMs(r.latencyMs.p50)}</td>
                    <td className="num">{fmtMs(r.latencyMs.p95)}</td>
                    <td className="num">{fmtMs(r.latencyMs.p99)}</td>
                    <td className="num">{fmtPercent(r.tlsPercent, false)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        ) : (
          <div className="empty">{parts.data ? `No traffic in the last ${win.label}.` : 'Loading…'}</div>
        )}

        <h2>
          Golden signals <span className="muted small">last {win.label}</span>
        </h2>
        <div className="charts">
          <Chart
            title="requests / s"
            points={rps.data?.points}
            error={historyProblem(rps.error)}
            format={(v) => fmtRps(v)}
            color="#58a6ff"
          />
          <Chart
            title="success rate"
            points={success.data?.points}
            error={historyProblem(success.error)}
            format={(v) => `${(v * 100).toFixed(0)}%`}
            color="#3fb950"
            yRange={SUCCESS_RANGE}
          />
          <Chart
            title="p99 latency"
            points={p99.data?.points}
            error={historyProblem(p99.error)}
            format={(v) => fmtMs(v)}
            color="#d29922"
          />
        </div>

        <h2>Instances</h2>
        {instances.data && instances.data.length > 0 ? (
          <table data-testid="instances">
            <thead>
              <tr>
                <th>id</th>
                <th>address</th>
                <th>health</th>
                <th>metrics</th>
                <th>version</th>
                <th>sidecar</th>
                <th>output</th>
              </tr>
            </thead>
            <tbody>
              {instances.data.map((i) => (
                <tr key={i.id} data-instance={i.id}>
                  <td className="mono">{i.id}</td>
                  <td className="mono">
                    {i.address}:{i.port}
                  </td>
                  <td>
                    <span
                      className={`pill ${i.status === 'passing' ? 'healthy' : i.status === 'warning' ? 'warning' : 'failing'}`}
                    >
                      {i.status}
                    </span>
                  </td>
                  <td>
                    {!i.adminAddress ? (
                      <span className="muted">not scraped</span>
                    ) : staleIds.has(i.id) ? (
                      <span className="pill stale">stale</span>
                    ) : (
                      <span className="muted">reporting</span>
                    )}
                  </td>
                  <td>{i.labels?.version ?? '–'}</td>
                  <td className="mono">{i.meshPort ? `:${i.meshPort}` : i.adminAddress ? 'yes' : 'none'}</td>
                  <td className="muted">{i.output ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <div className="empty">{instances.data ? 'No instances registered.' : 'Loading…'}</div>
        )}

        <h2>Routes</h2>
        {apiProblem(routes.error) ? (
          <div className="notice warn">{apiProblem(routes.error)}</div>
        ) : routes.data && routes.data.routes.length > 0 ? (
          <table data-testid="routes">
            <thead>
              <tr>
                <th>route</th>
                <th className="num">rps</th>
                <th className="num">success</th>
                <th className="num">p50</th>
                <th className="num">p99</th>
              </tr>
            </thead>
            <tbody>
              {routes.data.routes.map((r) => (
                <tr key={r.route}>
                  <td className="mono">{r.route}</td>
                  <td className="num">{fmtRps(r.rps)}</td>
                  <td className="num">{fmtPercent(r.successRate)}</td>
                  <td className="num">{fmtMs(r.latencyMs.p50)}</td>
                  <td className="num">{fmtMs(r.latencyMs.p99)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <div className="empty">No route traffic in the last {win.label}.</div>
        )}

        <h2>Configuration</h2>
        {related.length > 0 ? (
          <ul className="resources" data-testid="resources">
            {related.map((r) => (
              <li key={`${r.kind}/${r.metadata.name}`}>
                <span className="pill idle">{r.kind}</span> <span className="mono">{r.metadata.name}</span>
                {r.metadata.resourceVersion ? (
                  <span className="muted small"> v{r.metadata.resourceVersion}</span>
                ) : null}
              </li>
            ))}
          </ul>
        ) : (
          <div className="empty">No routes or policies for this service.</div>
        )}

        <h2>
          Recent errors <span className="muted small">last {win.label}</span>
        </h2>
        <ErrorHistory view={history.data} error={history.error} window={win.label} />

        <h3>
          Live <span className="muted small">failing requests the tap shows since this page opened</span>
        </h3>
        {errors.status === 'unavailable' ? (
          <div className="notice" data-testid="errors-unavailable">
            Recent errors come from the live tap, which this control plane does not have. The success-rate
            chart shows how many failed.
          </div>
        ) : errors.status === 'refused' ? (
          <div className="notice warn" data-testid="errors-refused">
            Recent errors come from the live tap, which this token may not use: {errors.message}
          </div>
        ) : (
          <TapTable events={errors.events} empty="No errors seen since this page opened." />
        )}

        <h2>Rollouts</h2>
        <RolloutsPanel namespace={ns} service={service} />
      </div>
    </section>
  );
}

/**
 * Why a chart has no data: the history endpoint's own answer (a window longer than the
 * history kept, a missing permission, no collection yet), so it never reads as "no traffic".
 */
function historyProblem(err: Error | undefined): string | undefined {
  const p = apiProblem(err);
  return p === undefined ? undefined : `history unavailable: ${p}`;
}

/**
 * The server's history of the service's failed requests over the page's window (kept by the
 * control plane, so a reload or a late visit still sees them): per side, caller, status,
 * gRPC status, error kind and version, most recently seen first.
 */
function ErrorHistory(props: { view: ErrorsView | undefined; error: Error | undefined; window: string }) {
  const problem = apiProblem(props.error);
  if (problem) return <div className="notice warn">{`error history unavailable: ${problem}`}</div>;
  if (!props.view) return <div className="empty">Loading…</div>;
  if (props.view.errors.length === 0)
    return (
      <div className="empty" data-testid="error-history-empty">
        No failed requests in the last {props.window}.
      </div>
    );
  return (
    <table data-testid="error-history">
      <thead>
        <tr>
          <th>last seen</th>
          <th>side</th>
          <th>caller</th>
          <th>status</th>
          <th>gRPC</th>
          <th>kind</th>
          <th title="of the sidecars that saw them: the service's on server rows, the caller's on client rows">
            version
          </th>
          <th className="num">count</th>
          <th>instances</th>
        </tr>
      </thead>
      <tbody>
        {props.view.errors.map((e) => (
          <tr
            key={[e.namespace, e.side, e.src, e.status, e.grpcStatus, e.kind, e.version].join('|')}
            data-side={e.side}
            data-version={e.version}
          >
            <td>{fmtTime(e.lastSeen)}</td>
            <td>{e.side}</td>
            <td className="mono">{e.src || '–'}</td>
            <td>{e.status || '–'}</td>
            <td>{e.grpcStatus || '–'}</td>
            <td className="mono">{e.kind || '–'}</td>
            <td className="mono">{e.version || '–'}</td>
            <td className="num">{e.count}</td>
            <td className="mono small">{e.instances.join(', ')}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Figure(props: { label: string; value: string }) {
  return (
    <div className="figure">
      <div className="figure-value">{props.value}</div>
      <div className="figure-label">{props.label}</div>
    </div>
  );
}
