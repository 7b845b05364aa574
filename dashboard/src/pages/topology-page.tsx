import { useState } from 'react';
import type { EdgesView, ServicesView } from '../api.ts';
import { ServiceTable } from '../components/service-table.tsx';
import { TopologyGraph } from '../components/topology-graph.tsx';
import { fmtTime } from '../format.ts';
import { apiProblem, usePoll } from '../hooks.ts';

const WINDOW = '1m';

/**
 * Services and who calls whom, over the last minute, refreshed every few seconds. "versions"
 * asks for each edge split by the destination's version (a canary's share on the graph).
 */
export function TopologyPage() {
  const [versions, setVersions] = useState(false);
  const services = usePoll<ServicesView>(`/v1/stats/services?window=${WINDOW}`);
  const edges = usePoll<EdgesView>(`/v1/stats/edges?window=${WINDOW}${versions ? '&by=version' : ''}`);
  const problem = apiProblem(services.error) ?? apiProblem(edges.error);
  return (
    <section className="page" data-testid="topology-page">
      <h1>
        Topology{' '}
        <span className="muted small">
          last {WINDOW} · updated {fmtTime(services.updatedAt)}
        </span>
      </h1>
      {problem ? <div className="notice warn">{problem}</div> : null}
      {services.data && edges.data ? (
        <div className="data">
          <TopologyGraph
            services={services.data.services}
            edges={edges.data.edges}
            versions={versions}
            onVersions={setVersions}
          />
          <Legend />
          <ServiceTable services={services.data.services} />
        </div>
      ) : services.data === undefined && !services.error ? (
        <div className="empty">Loading…</div>
      ) : null}
    </section>
  );
}

function Legend() {
  return (
    <div className="legend">
      <span className="pill healthy">≥ 99 % success</span>
      <span className="pill warning">≥ 95 %</span>
      <span className="pill failing">&lt; 95 %</span>
      <span className="pill idle">no traffic</span>
      <span className="pill degraded">some instances stale</span>
      <span className="pill stale">stale: not reporting</span>
      <span className="muted small">
        Edges: rps · success · p99 (caller&apos;s side); padlock: ≥ 99 % mTLS. With versions: each destination
        version&apos;s share of the requests · its success (served side).
      </span>
    </div>
  );
}
