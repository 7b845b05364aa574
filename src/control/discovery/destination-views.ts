/**
 * Per-destination views (Linkerd's per-destination discovery): for `name.namespace`, the
 * MeshService with its ready endpoints, and the resources that shape traffic to it (the
 * Service resource, routes attached to it, policies targeting it or those routes). Built
 * once per destination and shared by every proxy subscribed to it; JSON is produced here,
 * once, so sending to a thousand subscribers is string concatenation.
 */
import type { MeshState, ResourceEntry } from './mesh-state.ts';
import { appliesTo } from '../../proxy/authz/workload-selector.ts';
import { inboundTlsMode } from '../../proxy/transport/mtls.ts';
import type { Resource } from '../../config/resources.ts';

export interface DestinationView {
  /** `name.namespace` */
  readonly key: string;
  /** MeshService JSON, or undefined when nothing by that name exists (unknown destination). */
  readonly serviceJson: string | undefined;
  /** Resources for this destination, in id order. */
  readonly resources: readonly ResourceEntry[];
  /** Other destinations these resources name (backends, mirrors, fallbacks): subscribed too. */
  readonly deps: readonly string[];
  /** `namespace/service` whose instances feed the endpoints. */
  readonly instanceSet: string;
  /**
   * Inbound security policies that apply to this service's own workloads (its namespace's,
   * the root namespace's, or targeting it): sent only to the service's own proxies.
   */
  readonly inbound: readonly ResourceEntry[];
}

const ROUTE_KINDS = new Set(['HTTPRoute', 'GRPCRoute']);

/** Enforced by the destination's inbound sidecar, not by its clients. */
const INBOUND_KINDS = new Set(['AuthorizationPolicy', 'RequestAuthentication', 'PeerAuthentication']);

/** Cache of views; invalidated by store changes, rebuilt on demand. */
export class DestinationViews {
  readonly #state: MeshState;
  readonly #views = new Map<string, DestinationView>();

  readonly #trustDomain: (() => string | undefined) | undefined;

  /** `trustDomain`: the CA's, to fill each meshed endpoint's expected SPIFFE ID (mTLS). */
  constructor(state: MeshState, trustDomain?: () => string | undefined) {
    this.#state = state;
    this.#trustDomain = trustDomain;
  }

  get(key: string): DestinationView {
    let v = this.#views.get(key);
    if (!v) this.#views.set(key, (v = buildView(this.#state, key, this.#trustDomain?.())));
    return v;
  }

  /** Forget cached views affected by a change; returns the keys that were dropped. */
  invalidate(resources: boolean, instanceSets: ReadonlySet<string>): string[] {
    const out: string[] = [];
    for (const [k, v] of this.#views)
      if (resources || instanceSets.has(v.instanceSet)) {
        out.push(k);
        this.#views.delete(k);
      }
    return out;
  }

  /** Drop a view nobody subscribes to any more. */
  forget(key: string): void {
    this.#views.delete(key);
  }

  peek(key: string): DestinationView | undefined {
    return this.#views.get(key);
  }
}

interface Ref {
  name?: unknown;
  namespace?: unknown;
}

/** Build one destination's view from the mirror. */
/** Label naming an instance's service account when it is not the service's name. */
export const SERVICE_ACCOUNT_LABEL = 'hexmesh.io/service-account';

/**
 * Build one destination's view from the mirror. With `trustDomain`, a meshed endpoint says
 * which SPIFFE ID its sidecar must present: `spiffe://<td>/ns/<ns>/sa/<service account>`, the
 * service account from the instance (`serviceAccount`, or the SERVICE_ACCOUNT_LABEL label),
 * defaulting to the service's name.
 */
export function buildView(state: MeshState, key: string, trustDomain?: string): DestinationView {
  const dot = key.indexOf('.');
  const name = key.slice(0, dot);
  const ns = key.slice(dot + 1);
  const svcRes = state.resources.get(`Service/${ns}/${name}`);
  const spec = (svcRes?.doc.spec ?? {}) as {
    ports?: { name?: string; port: number; protocol?: string }[];
    selector?: Record<string, string>;
    instancesOf?: string;
    addresses?: string[];
  };
  // reviews-v2 = instances of reviews carrying version=v2 (Service.spec.instancesOf + selector).
  const instanceSet = `${ns}/${typeof spec.instancesOf === 'string' ? spec.instancesOf : name}`;
  const selector = spec.selector && typeof spec.selector === 'object' ? Object.entries(spec.selector) : [];
  const instances = state.instances.get(instanceSet);
  // The mode the instances' own sidecars enforce: under STRICT an endpoint without a sidecar
  // (registered before the policy, or by hand) is never handed to a client, and the client
  // is told, so that it drops such an endpoint itself (defence in depth).
  const peerAuth: Resource[] = [];
  for (const r of state.resources.values())
    if (r.kind === 'PeerAuthentication' && r.namespace === ns) peerAuth.push(r.doc as unknown as Resource);
  const strict = inboundTlsMode(peerAuth, instanceSet.slice(ns.length + 1), ns) === 'STRICT';

  let serviceJson: string | undefined;
  if (svcRes || instances) {
    const endpoints: unknown[] = [];
    const ids = instances ? [...instances.keys()].sort() : [];
    for (const id of ids) {
      const i = instances!.get(id)!;
      if (i.status !== 'passing' && i.status !== 'warning') continue;
      if (selector.some(([k, v]) => i.labels[k] !== v)) continue;
      const meshed = Number.isInteger(i.meshPort);
      if (strict && !meshed) continue;
      const sa =
        (i as { serviceAccount?: unknown }).serviceAccount ?? i.labels[SERVICE_ACCOUNT_LABEL] ?? i.service;
      endpoints.push({
        address: i.address,
        port: meshed ? i.meshPort : i.port,
        labels: i.labels,
        health: i.status,
        meshed,
        ...(meshed && trustDomain && typeof sa === 'string' && sa
          ? { identity: `spiffe://${trustDomain}/ns/${i.namespace}/sa/${sa}` }
          : {}),
      });
    }
    const ports = Array.isArray(spec.ports)
      ? spec.ports.map((p) => ({
          ...(p.name !== undefined ? { name: p.name } : {}),
          port: p.port,
          protocol: p.protocol ?? 'http',
        }))
      : [{ port: 80, protocol: 'http' }];
    serviceJson = JSON.stringify({
      name,
      namespace: ns,
      ports,
      ...(Array.isArray(spec.addresses) && spec.addresses.length ? { addresses: spec.addresses } : {}),
      endpoints,
      ...(strict && { mtls: 'STRICT' }),
    });
  }

  // Routes attached to this service, then policies targeting it or one of those routes.
  const resources: ResourceEntry[] = [];
  const deps = new Set<string>();
  const routeNames = new Set<string>();
  if (svcRes) resources.push(svcRes);
  for (const r of state.resources.values()) {
    if (!ROUTE_KINDS.has(r.kind)) continue;
    const rs = r.doc.spec as { parentRefs?: Ref[]; rules?: unknown[] } | undefined;
    const attached = rs?.parentRefs?.some?.((p) => p?.name === name && (p.namespace ?? r.namespace) === ns);
    if (!attached) continue;
    resources.push(r);
    routeNames.add(`${r.kind}/${r.name}`);
    for (const rule of Array.isArray(rs?.rules) ? rs.rules : []) {
      const rr = rule as { backendRefs?: Ref[]; filters?: { requestMirror?: { backendRef?: Ref } }[] };
      for (const b of Array.isArray(rr.backendRefs) ? rr.backendRefs : []) addDep(deps, b, r.namespace);
      for (const f of Array.isArray(rr.filters) ? rr.filters : [])
        if (f?.requestMirror?.backendRef) addDep(deps, f.requestMirror.backendRef, r.namespace);
    }
  }
  for (const p of state.resources.values()) {
    if (p.kind !== 'TrafficPolicy' || p.namespace !== ns) continue;
    const ps = p.doc.spec as
      { targetRef?: { kind?: string; name?: string }; fallback?: { service?: string } } | undefined;
    const t = ps?.targetRef;
    const kind = t?.kind ?? 'Service';
    const hit = kind === 'Service' ? t?.name === name : routeNames.has(`${kind}/${t?.name}`);
    if (!hit) continue;
    resources.push(p);
    if (typeof ps?.fallback?.service === 'string') addDep(deps, { name: ps.fallback.service }, ns);
  }
  const inbound: ResourceEntry[] = [];
  for (const p of state.resources.values())
    if (INBOUND_KINDS.has(p.kind) && appliesTo(p.doc as unknown as Parameters<typeof appliesTo>[0], name, ns))
      inbound.push(p);
  const byId = (a: ResourceEntry, b: ResourceEntry) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  resources.sort(byId);
  inbound.sort(byId);
  deps.delete(key);
  return { key, serviceJson, resources, deps: [...deps], instanceSet, inbound };
}

function addDep(deps: Set<string>, ref: Ref, ns: string): void {
  if (typeof ref?.name !== 'string') return;
  deps.add(`${ref.name}.${typeof ref.namespace === 'string' ? ref.namespace : ns}`);
}
