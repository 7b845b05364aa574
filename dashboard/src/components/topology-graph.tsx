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
  forceX,
  forceY,
  type SimulationNodeDatum,
} from 'd3-force';
import { useEffect, useMemo, useRef, useState, type PointerEvent as ReactPointerEvent } from 'react';
import type { EdgeStat, ServiceStat } from '../api.ts';
import { HEALTH_LABEL, fmtMs, fmtPercent, fmtRps, serviceHealth, type Health } from '../format.ts';
import { navigate } from '../hooks.ts';
import { LockIcon } from './lock-icon.tsx';
import { servicePath } from './link.tsx';

const R = 30;
/** Versions listed on an edge's label at most (the busiest). */
const MAX_PARTS = 4;

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

interface ViewBox {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The smallest area shown, so a graph of two nodes is not blown up to fill the panel. */
const MIN_W = 640;
const MIN_H = 300;

/**
 * The graph, fitted to the panel (a viewBox around the nodes and their labels, the layout
 * stretched towards the panel's shape), with wheel zoom, drag to pan and a Fit button;
 * `hideIdle` leaves out services with no traffic and no edge.
 */
export function TopologyGraph(props: {
  services: ServiceStat[];
  edges: EdgeStat[];
  /** Edges carry `split` by version: show each version's share on the edge's label. */
  versions?: boolean;
  onVersions?: (on: boolean) => void;
}) {
  const [hideIdle, setHideIdle] = useState(false);
  const [zoom, setZoom] = useState<ViewBox | undefined>(undefined);
  const edgeKeys = new Set(
    props.edges.flatMap((e) => [`${e.namespace}/${e.src}`, `${e.namespace}/${e.dst}`]),
  );
  const services = hideIdle
    ? props.services.filter((s) => edgeKeys.has(`${s.namespace}/${s.service}`) || (s.rps ?? 0) > 0)
    : props.services;
  return (
    <div className="topology-wrap">
      <div className="topology-tools">
        <button type="button" onClick={() => setZoom(undefined)} data-testid="topology-fit">
          Fit
        </button>
        <button
          type="button"
          onClick={() => setZoom((z) => scaleView(z, 0.8))}
          data-testid="topology-zoom-in"
        >
          +
        </button>
        <button
          type="button"
          onClick={() => setZoom((z) => scaleView(z, 1.25))}
          data-testid="topology-zoom-out"
        >
          −
        </button>
        <label className="small">
          <input
            type="checkbox"
            checked={hideIdle}
            onChange={(e) => setHideIdle(e.currentTarget.checked)}
            data-testid="topology-hide-idle"
          />{' '}
          hide idle services
        </label>
        {props.onVersions ? (
          <label className="small">
            <input
              type="checkbox"
              checked={props.versions === true}
              onChange={(e) => props.onVersions?.(e.currentTarget.checked)}
              data-testid="topology-versions"
            />{' '}
            versions
          </label>
        ) : null}
        <span className="muted small">scroll to zoom, drag to pan</span>
      </div>
      <Graph services={services} edges={props.edges} zoom={zoom} setZoom={setZoom} />
    </div>
  );
}

/** The fitted viewBox, remembered for the zoom buttons (set by Graph on each render). */
let lastFit: ViewBox | undefined;

function scaleView(z: ViewBox | undefined, f: number, cx?: number, cy?: number): ViewBox | undefined {
  const v = z ?? lastFit;
  if (!v) return z;
  const x = cx ?? v.x + v.w / 2;
  const y = cy ?? v.y + v.h / 2;
  return { x: x - (x - v.x) * f, y: y - (y - v.y) * f, w: v.w * f, h: v.h * f };
}

function Graph(props: {
  services: ServiceStat[];
  edges: EdgeStat[];
  zoom: ViewBox | undefined;
  setZoom: (f: (z: ViewBox | undefined) => ViewBox | undefined) => void;
}) {
  const positions = useRef(new Map<string, { x: number; y: number }>());
  const layoutKey = useRef('');
  const svgRef = useRef<SVGSVGElement | null>(null);
  const drag = useRef<{ x: number; y: number; view: ViewBox } | undefined>(undefined);
  const { setZoom } = props;

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
      .force('charge', forceManyBody().strength(-700))
      .force(
        'link',
        forceLink(
          links.map((l) => ({ source: index.get(l.source.key)!, target: index.get(l.target.key)! })),
        ).distance(200),
      )
      .force('center', forceCenter(0, 0))
      // Pulled harder vertically than horizontally: the panel is wide, so is the layout.
      .force('x', forceX(0).strength(0.03))
      .force('y', forceY(0).strength(0.12))
      // Room for the node's name and instance line below it, and its edge labels.
      .force('collide', forceCollide(R * 2.8))
      .stop();
    sim.tick(300);
    positions.current = new Map(simNodes.map((n) => [n.key, { x: n.x ?? 0, y: n.y ?? 0 }]));
  }

  // Wheel zoom around the pointer (a non-passive listener: the page must not scroll).
  useEffect(() => {
    const svg = svgRef.current;
    if (!svg) return;
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      const p = toSvg(svg, e.clientX, e.clientY);
      setZoom((z) => scaleView(z, e.deltaY < 0 ? 0.85 : 1 / 0.85, p.x, p.y));
    };
    svg.addEventListener('wheel', onWheel, { passive: false });
    return () => svg.removeEventListener('wheel', onWheel);
    // The svg exists only once there are nodes: attach when it appears.
  }, [setZoom, nodes.length > 0]);
  const pos = (k: string) => positions.current.get(k) ?? { x: 0, y: 0 };

  // Fit: the nodes with their labels (names below, edge labels beside), at least MIN_W x MIN_H.
  const xs = nodes.map((n) => pos(n.key).x);
  const ys = nodes.map((n) => pos(n.key).y);
  const x0 = Math.min(...xs) - R - 70;
  const x1 = Math.max(...xs) + R + 70;
  const y0 = Math.min(...ys) - R - 20;
  const y1 = Math.max(...ys) + R + 40;
  const fw = Math.max(x1 - x0, MIN_W);
  const fh = Math.max(y1 - y0, MIN_H);
  const fit: ViewBox = { x: (x0 + x1 - fw) / 2, y: (y0 + y1 - fh) / 2, w: fw, h: fh };
  lastFit = fit;
  const view = props.zoom ?? fit;

  const onPointerDown = (e: ReactPointerEvent<SVGSVGElement>) => {
    if ((e.target as Element).closest('.node')) return; // a click on a node opens it
    drag.current = { x: e.clientX, y: e.clientY, view };
    e.currentTarget.setPointerCapture(e.pointerId);
  };
  const onPointerMove = (e: ReactPointerEvent<SVGSVGElement>) => {
    const d = drag.current;
    const ctm = svgRef.current?.getScreenCTM();
    if (!d || !ctm) return;
    const dx = (e.clientX - d.x) / ctm.a;
    const dy = (e.clientY - d.y) / ctm.d;
    setZoom(() => ({ ...d.view, x: d.view.x - dx, y: d.view.y - dy }));
  };
  const onPointerUp = () => {
    drag.current = undefined;
  };

  if (nodes.length === 0) return <div className="empty">No services to show.</div>;
  return (
    <svg
      ref={svgRef}
      className="topology"
      viewBox={`${view.x} ${view.y} ${view.w} ${view.h}`}
      role="img"
      aria-label="service topology"
      data-testid="topology"
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={onPointerUp}
    >
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
        const { x1, y1, x2, y2, cls } = edgeGeometry(edge, pos(source.key), pos(target.key));
        return (
          <g
            key={`${source.key}>${target.key}`}
            className={`edge ${cls}`}
            data-testid="edge"
            data-edge={`${edge.src}->${edge.dst}`}
          >
            <line x1={x1} y1={y1} x2={x2} y2={y2} markerEnd="url(#arrow)" />
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
      {/* Edge labels last: on top of nodes and lines, each on a backing plate. */}
      {links.map(({ edge, source, target }) => {
        const { mx, my, cls, locked } = edgeGeometry(edge, pos(source.key), pos(target.key));
        const parts = (edge.split ?? []).slice(0, MAX_PARTS);
        const served = parts.reduce((n, p) => n + p.requests, 0);
        return (
          <g
            key={`${source.key}>${target.key}`}
            className={`edge-labels ${cls}`}
            data-testid="edge-label"
            data-edge={`${edge.src}->${edge.dst}`}
          >
            <rect
              x={mx - 52}
              y={my - 20}
              width={104}
              height={34 + parts.length * 14}
              rx={4}
              className="edge-plate"
            />
            <text x={mx} y={my - 7} textAnchor="middle" className="edge-label">
              <tspan className="edge-rps">{fmtRps(edge.rps)} rps</tspan>
              <tspan className="edge-success"> · {fmtPercent(edge.successRate)}</tspan>
            </text>
            <text x={mx} y={my + 9} textAnchor="middle" className="edge-label">
              <tspan className="edge-p99">p99 {fmtMs(edge.p99Ms)}</tspan>
            </text>
            {parts.map((p, i) => (
              <text
                key={p.value}
                x={mx}
                y={my + 23 + i * 14}
                textAnchor="middle"
                className="edge-label edge-version"
                data-version={p.value}
              >
                {`${p.value || '–'} ${served > 0 ? Math.round((p.requests / served) * 100) : 0}% · ${fmtPercent(p.successRate)}`}
              </text>
            ))}
            {locked ? (
              <LockIcon x={mx + 40} y={my} size={13} title={`mTLS ${fmtPercent(edge.tlsPercent, false)}`} />
            ) : null}
          </g>
        );
      })}
    </svg>
  );
}

/** Where an edge's line and label go: offset to the right of travel (a → b and b → a apart). */
function edgeGeometry(edge: EdgeStat, a: { x: number; y: number }, b: { x: number; y: number }) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len;
  const uy = dy / len;
  const ox = -uy * 7;
  const oy = ux * 7;
  const x1 = a.x + ux * (R + 2) + ox;
  const y1 = a.y + uy * (R + 2) + oy;
  const x2 = b.x - ux * (R + 6) + ox;
  const y2 = b.y - uy * (R + 6) + oy;
  const mx = (x1 + x2) / 2 - uy * 24;
  const my = (y1 + y2) / 2 + ux * 24;
  const cls =
    edge.successRate === null
      ? 'idle'
      : edge.successRate < 0.95
        ? 'failing'
        : edge.successRate < 0.99
          ? 'warning'
          : 'healthy';
  const locked = edge.tlsPercent !== null && edge.tlsPercent >= 99;
  return { x1, y1, x2, y2, mx, my, cls, locked };
}

/** Client coordinates to the SVG's user space. */
function toSvg(svg: SVGSVGElement, x: number, y: number): { x: number; y: number } {
  const ctm = svg.getScreenCTM();
  if (!ctm) return { x, y };
  const p = new DOMPoint(x, y).matrixTransform(ctm.inverse());
  return { x: p.x, y: p.y };
}
