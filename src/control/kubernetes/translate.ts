/**
 * Kubernetes objects → what the control plane stores: a Service and its EndpointSlices
 * become a hexmesh Service resource and catalog instances; an HTTPRoute, GRPCRoute or a
 * hexmesh CRD object becomes the resource of the same kind, validated by the same schema as
 * the REST API. Pure functions over the objects' JSON, so each rule is testable alone.
 */
import { isIP } from 'node:net';
import type { Instance } from '../catalog/instance.ts';
import { ConfigError } from '../../config/load.ts';
import { validateResources, type StoredDoc } from '../validate-resource.ts';

/** Label on everything this source wrote: a resync deletes only what carries it. */
export const SOURCE_LABEL = 'hexmesh.io/source';
export const SOURCE_VALUE = 'kubernetes';
/** The endpoint's zone (EndpointSlice `endpoints[].zone`), as Kubernetes labels nodes. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const NODE_LABEL = 'kubernetes.io/hostname';
export const POD_LABEL = 'hexmesh.io/pod';
/** The Deployment and ReplicaSet of an endpoint's Pod (`podWorkload`): `hexmesh stat deploy/NAME`. */
export const DEPLOYMENT_LABEL = 'hexmesh.io/deployment';
export const REPLICASET_LABEL = 'hexmesh.io/replicaset';
/** On the Service made for one more port of a multi-port Kubernetes Service: that Service's name. */
export const PORT_OF_LABEL = 'hexmesh.io/port-of';

/** The JSON of an object as the API server sends it (only what is read here). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string | Date;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export interface KubeServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export interface KubeEndpointSlice extends KubeObject {
  addressType?: string;
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[];
  endpoints?: {
    addresses?: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    zone?: string;
    nodeName?: string;
    targetRef?: { kind?: string; name?: string };
  }[];
}

const HEXMESH_PROTOCOLS = new Set(['http', 'http2', 'grpc', 'tcp', 'opaque']);

/**
 * A port's protocol: its `appProtocol` (`http`, `kubernetes.io/h2c` → http2, `grpc`, `tcp`,
 * or any hexmesh protocol name), else the Istio-style name prefix (`grpc-web`, `http2-x`),
 * else `http`, hexmesh's default.
 */
export function portProtocol(p: { name?: string; appProtocol?: string }): string {
  const ap = p.appProtocol?.toLowerCase();
  if (ap) {
    if (ap === 'kubernetes.io/h2c' || ap === 'h2c') return 'http2';
    if (ap === 'https' || ap === 'kubernetes.io/wss') return 'tcp';
    if (ap === 'kubernetes.io/ws') return 'http';
    if (HEXMESH_PROTOCOLS.has(ap)) return ap;
  }
  const prefix = p.name?.toLowerCase().split('-')[0];
  if (prefix && HEXMESH_PROTOCOLS.has(prefix)) return prefix;
  return 'http';
}

function iso(t: string | Date | undefined): string | undefined {
  if (t === undefined) return undefined;
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** The TCP ports of a Service that hexmesh routes (UDP/SCTP are not proxied). */
function tcpPorts(svc: KubeObject): KubeServicePort[] {
  const ports = (svc.spec?.ports ?? []) as KubeServicePort[];
  return ports.filter((p) => (p.protocol ?? 'TCP') === 'TCP' && Number.isInteger(p.port));
}

/** A Service's cluster IPs (`clusterIPs`, else `clusterIP`), none for a headless one. */
export function clusterIps(svc: KubeObject): string[] {
  const spec = svc.spec ?? {};
  const ips = Array.isArray(spec.clusterIPs) ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  return ips.filter((ip): ip is string => typeof ip === 'string' && isIP(ip) !== 0);
}

/**
 * The hexmesh Service for a Kubernetes Service, or undefined for one hexmesh does not
 * route (ExternalName, no TCP port). Its cluster IPs become `addresses`: where transparent
 * capture finds the service a connection was going to.
 */
export function serviceResource(svc: KubeObject): StoredDoc | undefined {
  if (svc.spec?.type === 'ExternalName') return undefined;
  const ports = tcpPorts(svc);
  if (!ports.length) return undefined;
  const doc = {
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'Service',
    metadata: meta(svc),
    spec: {
      ports: ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port,
        ...(typeof p.targetPort === 'number' ? { targetPort: p.targetPort } : {}),
        protocol: portProtocol(p),
      })),
      ...(clusterIps(svc).length ? { addresses: clusterIps(svc) } : {}),
    },
  };
  return validateResources([doc], `Service ${svc.metadata?.namespace}/${svc.metadata?.name}`)[0].doc;
}

/** One hexmesh Service of a Kubernetes Service: its name and the port its instances are on. */
export interface PortService {
  name: string;
  port: KubeServicePort;
  doc: StoredDoc;
}

/** `<service>-<port name, or number>` as a DNS-1123 label (63 at most). */
export function portServiceName(service: string, p: KubeServicePort): string {
  const suffix = (p.name ?? String(p.port)).toLowerCase().replace(/[^a-z0-9-]/g, '-');
  return `${service}-${suffix}`.slice(0, 63).replace(/-+$/, '');
}

/**
 * Every hexmesh Service of a Kubernetes Service. hexmesh balances one port per service, so a
 * multi-port Service becomes one per TCP port, each its own upstream with its own protocol and
 * endpoints (Istio's cluster per service port): the first port keeps the Service's name (as
 * `serviceResource`); each further port is `<name>-<port name>` (or `-<number>`), labelled
 * PORT_OF_LABEL, declaring only that port and sharing the cluster IPs — so a captured
 * connection to `<cluster IP>:<port>`, or a request to `<name>:<port>`, reaches that port's
 * pods (outbound-stack.ts). Empty for a Service hexmesh does not route.
 */
export function serviceResources(svc: KubeObject): PortService[] {
  const base = serviceResource(svc);
  const ports = tcpPorts(svc);
  if (!base) return [];
  const name = svc.metadata?.name ?? '';
  const out: PortService[] = [{ name, port: ports[0], doc: base }];
  const addresses = clusterIps(svc);
  for (const p of ports.slice(1)) {
    const derived = portServiceName(name, p);
    const m = meta(svc);
    const doc = {
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'Service',
      metadata: {
        ...m,
        name: derived,
        labels: { ...(m.labels as Record<string, string>), [PORT_OF_LABEL]: name },
      },
      spec: {
        ports: [
          {
            ...(p.name ? { name: p.name } : {}),
            port: p.port,
            ...(typeof p.targetPort === 'number' ? { targetPort: p.targetPort } : {}),
            protocol: portProtocol(p),
          },
        ],
        ...(addresses.length ? { addresses } : {}),
      },
    };
    const label = `Service ${svc.metadata?.namespace}/${name} port ${p.name ?? p.port}`;
    out.push({ name: derived, port: p, doc: validateResources([doc], label)[0].doc });
  }
  return out;
}

/** The alphabet of Kubernetes' generated name parts (k8s.io/apimachinery rand.SafeEncodeString). */
const SAFE = '[bcdfghjklmnpqrstvwxz2456789]';
const DEPLOYMENT_POD = new RegExp(
  `^([a-z0-9]([-a-z0-9]*[a-z0-9])?)-(${SAFE}{1,10}|[0-9a-f]{10})-${SAFE}{5}$`,
);

/**
 * The Deployment and ReplicaSet a Pod belongs to, read from its name alone: the Deployment
 * controller names a ReplicaSet `<deployment>-<pod-template-hash>` and the ReplicaSet names
 * its Pods `<replicaset>-<5 random>`, both parts in Kubernetes' safe alphabet (no vowels, no
 * 0/1/3); a Rollout's ReplicaSet is `<deployment>-<10 hex of its template>`
 * (deployment-rollouts.ts). The control plane does not read Pods (no RBAC on them), so this is the EndpointSlice
 * targetRef name; undefined for a name that does not have that shape (a bare Pod, a
 * StatefulSet's `web-0`, a name the API server truncated past 58 characters).
 */
export function podWorkload(pod: string): { deployment: string; replicaSet: string } | undefined {
  const m = DEPLOYMENT_POD.exec(pod);
  if (!m) return undefined;
  return { deployment: m[1], replicaSet: `${m[1]}-${m[3]}` };
}

/**
 * The Deployment of a catalog instance: its `hexmesh.io/deployment` label (an EndpointSlice
 * endpoint's, `sliceInstances`), else the one its `hexmesh.io/pod` label names (an injected
 * sidecar registers itself with the pod's name: injector.ts).
 */
export function instanceDeployment(labels: Record<string, string> | undefined): string | undefined {
  const own = labels?.[DEPLOYMENT_LABEL];
  if (typeof own === 'string' && own) return own;
  const pod = labels?.[POD_LABEL];
  return typeof pod === 'string' ? podWorkload(pod)?.deployment : undefined;
}

/**
 * Catalog instances of a Service from its EndpointSlices: one per endpoint address, on the
 * slice port named like `port` (default: the Service's first TCP port), registered under
 * `service` (default: the Service's name; a per-port Service's name: `serviceResources`).
 * Ready endpoints are `passing`, the rest `critical` (not routed to); the zone, node, pod and
 * the pod's Deployment and ReplicaSet (`podWorkload`) go into labels.
 */
export function sliceInstances(
  svc: KubeObject,
  slices: readonly KubeEndpointSlice[],
  now: string,
  port?: { service: string; port: KubeServicePort },
): Instance[] {
  const ns = svc.metadata?.namespace ?? 'default';
  const name = port?.service ?? svc.metadata?.name ?? '';
  const first = port?.port ?? tcpPorts(svc)[0];
  if (!first) return [];
  const out = new Map<string, Instance>();
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const port = (slice.ports ?? []).find((p) => (p.name ?? '') === (first.name ?? ''))?.port;
    if (!Number.isInteger(port)) continue;
    for (const ep of slice.endpoints ?? []) {
      const ready = ep.conditions?.ready !== false;
      for (const address of ep.addresses ?? []) {
        const id = `${address.replace(/[^A-Za-z0-9._-]/g, '_')}-${port}`;
        const labels: Record<string, string> = { [SOURCE_LABEL]: SOURCE_VALUE };
        if (ep.zone) labels[ZONE_LABEL] = ep.zone;
        if (ep.nodeName) labels[NODE_LABEL] = ep.nodeName;
        if (ep.targetRef?.kind === 'Pod' && ep.targetRef.name) {
          labels[POD_LABEL] = ep.targetRef.name;
          const owner = podWorkload(ep.targetRef.name);
          if (owner) {
            labels[DEPLOYMENT_LABEL] = owner.deployment;
            labels[REPLICASET_LABEL] = owner.replicaSet;
          }
        }
        const prev = out.get(id);
        // The same address in two slices (a slice being replaced): ready wins.
        if (prev && prev.status === 'passing') continue;
        out.set(id, {
          id,
          service: name,
          namespace: ns,
          address,
          port: port!,
          labels,
          checks: [],
          status: ready ? 'passing' : 'critical',
          registeredAt: now,
          statusChangedAt: now,
          lease: 0,
        });
      }
    }
  }
  return [...out.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** What an instance is compared by: everything but times. */
export function instanceEssence(i: Instance): string {
  return JSON.stringify([i.address, i.port, i.status, i.labels, i.meshPort ?? null]);
}

/** A route or policy object (Gateway API, hexmesh CRD) → the stored resource, or why not. */
export function mirroredResource(
  obj: KubeObject,
  kind: string,
  apiVersion: string,
): { doc: StoredDoc } | { error: string } {
  const spec = stripNulls(obj.spec ?? {});
  // A local Rollout's template is a command line that `hexmesh up`'s rollout controller runs on
  // its host. From Kubernetes it is never that: whoever may write a Rollout in some namespace
  // must not put a command into the store a local runner would execute.
  if (kind === 'Rollout' && spec.template !== undefined)
    return {
      error:
        'spec.template: a local command line, not run from Kubernetes; name the Deployment to roll out with spec.workloadRef',
    };
  const doc = { apiVersion, kind, metadata: meta(obj), spec };
  try {
    return {
      doc: validateResources([doc], `${kind} ${obj.metadata?.namespace}/${obj.metadata?.name}`)[0].doc,
    };
  } catch (e) {
    if (e instanceof ConfigError)
      return { error: e.problems.map((p) => `spec${p.path.replace(/^spec/, '')}: ${p.message}`).join('; ') };
    throw e;
  }
}

function meta(obj: KubeObject): StoredDoc['metadata'] {
  const m = obj.metadata ?? {};
  const created = iso(m.creationTimestamp);
  return {
    name: m.name ?? '',
    namespace: m.namespace ?? 'default',
    labels: { ...m.labels, [SOURCE_LABEL]: SOURCE_VALUE },
    ...(created ? { creationTimestamp: created } : {}),
  };
}

/** The API server's JSON never has `null` where hexmesh's schemas expect a value or nothing. */
function stripNulls<T>(v: T): T {
  if (Array.isArray(v)) return v.map(stripNulls) as T;
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = stripNulls(x);
    return out as T;
  }
  return v;
}
