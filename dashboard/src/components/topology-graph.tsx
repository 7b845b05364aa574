/**
 * The topology graph: services as nodes, caller → callee edges labelled with rps, success
 * rate, p99 and a padlock when ≥ 99 % of the edge's requests were mTLS. Laid out with
 * d3-force, run to rest synchronously when the set of nodes changes (not on every refresh,
 * so nodes stay put while the numbers update); drawn as SVG so every figure is text.
 */
import {
  forceCenter,
  forceCollide,
  forceLink,
  forceManyBody,
  forceSimulation,
  type SimulationNodeDatum,
} from 'd3-force';
import { useMemo, useRef } from 'react';
import type { EdgeStat, ServiceStat } from '../api.ts';
import { HEALTH_LABEL, fmtMs, fmtPercent, fmtRps, serviceHealth, type Health } from '../format.ts';
import { navigate } from '../hooks.ts';
import { LockIcon } from './lock-icon.tsx';
import { servicePath } from './link.tsx';

const R = 30;

interface GraphNode extends SimulationNodeDatum {
  key: string;
  namespace: string;
  service: string;
  stat?: ServiceStat;
  health: Health;
}

const nodeKey = (namespace: string, service: string) => `${namespace}/${service}`;

/** A stable pseudo-random start position from a name, so layouts repeat. */
function seed(key: string): { x: number; y: number } {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return { x: ((h & 0xffff) / 0xffff - 0.5) * 400, y: (((h >>> 16) & 0xffff) / 0xffff - 0.5) * 300 };
}

export function TopologyGraph(props: { services: ServiceStat[]; edges: EdgeStat[] }) {
  const positions = useRef(new Map<string, { x: number; y: number }>());
  const layoutKey = useRef('');

  const { nodes, links } = useMemo(() => {
    const byKey = new Map<string, GraphNode>();
    for (const s of props.services)
      byKey.set(nodeKey(s.namespace, s.service), {
        key: nodeKey(s.namespace, s.service),
        namespace: s.namespace,
        service: s.service,
        stat: s,
        health: serviceHealth(s),
      });
    const find = (namespace: string, service: string): GraphNode => {
      const k = nodeKey(namespace, service);
      let n = byKey.get(k);
      if (!n) {
        for (const v of byKey.values()) if (v.service === service) return v;
        n = { key: k, namespace, service, health: 'idle' };
        byKey.set(k, n);
      }
      return n;
    };
    const links = props.edges.map((e) => ({
      edge: e,
      source: find(e.namespace, e.src),
      target: find(e.namespace, e.dst),
    }));
    return { nodes: [...byKey.values()], links };
  }, [props.services, props.edges]);

  // Lay out again only when nodes or links appear or go.
  const shape =
    nodes
      .map((n) => n.key)
      .sort()
      .join(',') +
    '|' +
    links
      .map((l) => `${l.source.key}>${l.target.key}`)
      .sort()
      .join(',');
  if (shape !== layoutKey.current) {
    layoutKey.current = shape;
    const simNodes = nodes.map(
      (n) =>
        ({ ...(positions.current.get(n.key) ?? seed(n.key)), key: n.key }) as SimulationNodeDatum & {
          key: string;
        },
    );
    const index = new Map(simNodes.map((n) => [n.key, n]));
    const sim = forceSimulation(simNodes)
      .force('charge', forceManyBody().strength(-900))
      .force(
        'link',
        forceLink(
          links.map((l) => ({ source: index.get(l.source.key)!, target: index.get(l.target.key)! })),
        ).distance(230),
      )
      .force('center', forceCenter(0, 0))
      .force('collide', forceCollide(R * 2.5))
      .stop();
    sim.tick(300);
    positions.current = new Map(simNodes.map((n) => [n.key, { x: n.x ?? 0, y: n.y ?? 0 }]));
  }
  const pos = (k: string) => positions.current.get(k) ?? { x: 0, y: 0 };

  const xs = nodes.map((n) => pos(n.key).x);
  const ys = nodes.map((n) => pos(n.key).y);
  const pad = R + 90;
  const minX = Math.min(...xs, 0) - pad;
  const minY = Math.min(...ys, 0) - pad;
  const w = Math.max(...xs, 0) + pad - minX;
  const h = Math.max(...ys, 0) + pad - minY;

  if (nodes.length === 0) return <div className="empty">No services registered yet.</div>;
  return (
    <svg className="topology" viewBox={`${minX} ${minY} ${w} ${h}`} role="img" aria-label="service topology">
      <defs>
        <marker
          id="arrow"
          viewBox="0 0 10 10"
          refX="9"
          refY="5"
          markerWidth="7"
          markerHeight="7"
          orient="auto-start-reverse"
        >
          <path d="M0 0L10 5L0 10z" className="arrowhead" />
        </marker>
      </defs>
      {links.map(({ edge, source, target }) => {
        const a = pos(source.key);
        const b = pos(target.key);
        const dx = b.x - a.x;
        const dy = b.y - a.y;
        const len = Math.hypot(dx, dy) || 1;
        const ux = dx / len;
        const uy = dy / len;
        // Offset to the right of the direction of travel: a → b and b → a do not overlap.
        const ox = -uy * 7;
        const oy = ux * 7;
        const x1 = a.x + ux * (R + 2) + ox;
        const y1 = a.y + uy * (R + 2) + oy;
        const x2 = b.x - ux * (R + 6) + ox;
        const y2 = b.y - uy * (R + 6) + oy;
        const mx = (x1 + x2) / 2 - uy * 18;
        const my = (y1 + y2) / 2 + ux * 18;
        const cls =
          edge.successRate === null
            ? 'idle'
            : edge.successRate < 0.95
              ? 'failing'
              : edge.successRate < 0.99
                ? 'warning'
                : 'healthy';
        const locked = edge.tlsPercent !== null && edge.tlsPercent >= 99;
        return (
          <g
            key={`${source.key}>${target.key}`}
            className={`edge ${cls}`}
            data-testid="edge"
            data-edge={`${edge.src}->${edge.dst}`}
          >
            <line x1={x1} y1={y1} x2={x2} y2={y2} markerEnd="url(#arrow)" />
            <text x={mx} y={my - 7} textAnchor="middle" className="edge-label">
              <tspan className="edge-rps">{fmtRps(edge.rps)} rps</tspan>
              <tspan className="edge-success"> · {fmtPercent(edge.successRate)}</tspan>
            </text>
            <text x={mx} y={my + 9} textAnchor="middle" className="edge-label">
              <tspan className="edge-p99">p99 {fmtMs(edge.p99Ms)}</tspan>
            </text>
            {locked ? (
              <LockIcon x={mx + 40} y={my} size={13} title={`mTLS ${fmtPercent(edge.tlsPercent, false)}`} />
            ) : null}
          </g>
        );
      })}
      {nodes.map((n) => {
        const p = pos(n.key);
        const s = n.stat;
        return (
          <g
            key={n.key}
            className={`node ${n.health}`}
            data-testid="node"
            data-service={n.service}
            data-health={n.health}
            transform={`translate(${p.x},${p.y})`}
            onClick={() => navigate(servicePath(n.namespace, n.service))}
            role="link"
          >
            <title>{`${n.key}: ${HEALTH_LABEL[n.health]}`}</title>
            <circle r={R} />
            <text y={-2} textAnchor="middle" className="node-figure">
              {s && s.successRate !== null ? fmtPercent(s.successRate) : '–'}
            </text>
            <text y={12} textAnchor="middle" className="node-sub">
              {s ? `${fmtRps(s.rps)} rps` : ''}
            </text>
            <text y={R + 16} textAnchor="middle" className="node-name">
              {n.service}
            </text>
            <text y={R + 30} textAnchor="middle" className="node-sub">
              {s
                ? s.stale
                  ? `${s.instances - s.stale}/${s.instances} up · ${s.stale} stale`
                  : `${s.instances} inst.`
                : 'not registered'}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
