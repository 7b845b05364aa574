/**
 * A rollout's routing on Kubernetes, as Argo Rollouts' Gateway API plugin does it: Services
 * `<svc>-stable` and `<svc>-canary` selecting the pods of `<svc>` (its own selector) of one
 * revision each, and an HTTPRoute `<svc>-rollout` attached to `<svc>` (GAMMA) that splits its
 * traffic between them by weight. hexmesh's Kubernetes mirror (kubernetes-source.ts) serves
 * them to the sidecars like any route; `kubectl get httproute` shows the weights.
 *
 * Each object is written by server-side apply (field manager `hexmesh-rollouts`): a write
 * says the whole desired object, so a retried or repeated one changes nothing. The apply is
 * forced, so an object of that name must be the Rollout's own (`#mayWrite`): the names come
 * from whoever wrote the Rollout, and a forced apply would take over anyone's Service or route
 * (rbac.ts grants `get` on both for this read).
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Selector, TrafficState, TrafficWriter } from '../../rollout/traffic.ts';
import { KubeApiError, type KubeApi } from './kube-api.ts';

export const ROLLOUT_FIELD_MANAGER = 'hexmesh-rollouts';

interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

/** Server-side apply of one object at its own path (created when missing). */
export async function serverSideApply(api: KubeApi, path: string, obj: unknown): Promise<void> {
  const url = `${path}?fieldManager=${ROLLOUT_FIELD_MANAGER}&force=true`;
  const r = await api.request('PATCH', url, obj, 'application/apply-patch+yaml');
  if (r.status !== 200 && r.status !== 201) throw new KubeApiError('PATCH', path, r);
}

export class KubeRolloutTraffic implements TrafficWriter {
  readonly #api: KubeApi;
  readonly namespace: string;
  readonly service: string;
  readonly #owner: Record<string, unknown> | undefined;
  #target: { selector: Selector; ports: ServicePort[] } | undefined;

  /** `owner`: an ownerReference (the Rollout), so the objects go with it. */
  constructor(api: KubeApi, namespace: string, service: string, owner?: Record<string, unknown>) {
    this.#api = api;
    this.namespace = namespace;
    this.service = service;
    this.#owner = owner;
  }

  get stableName(): string {
    return `${this.service}-stable`;
  }
  get canaryName(): string {
    return `${this.service}-canary`;
  }
  get routeName(): string {
    return `${this.service}-rollout`;
  }

  async apply(s: TrafficState): Promise<void> {
    const { selector, ports } = await this.#serviceOf();
    const meta = (name: string) => ({
      name,
      namespace: this.namespace,
      labels: { 'hexmesh.io/managed-by': 'rollout', 'hexmesh.io/rollout-service': this.service },
      ...(this.#owner ? { ownerReferences: [this.#owner] } : {}),
    });
    const svc = (name: string, sel: Selector) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(name),
      spec: { selector: { ...selector, ...sel }, ports },
    });
    const services = [svc(this.stableName, s.stable), svc(this.canaryName, s.canary)];
    if (s.preview) services.push(svc(s.preview.name, s.preview.selector));
    const servicePath = (name: string) => `/api/v1/namespaces/${this.namespace}/services/${name}`;
    const routePath = `/apis/gateway.networking.k8s.io/v1/namespaces/${this.namespace}/httproutes/${this.routeName}`;
    for (const o of services) await this.#mayWrite('Service', servicePath(o.metadata.name));
    await this.#mayWrite('HTTPRoute', routePath);
    // Services first: the route never names a backend that selects the wrong pods.
    for (const o of services) await serverSideApply(this.#api, servicePath(o.metadata.name), o);
    const port = ports[0]?.port ?? 80;
    await serverSideApply(this.#api, routePath, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: meta(this.routeName),
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: this.service }],
        rules: [
          {
            backendRefs: [
              { name: this.stableName, port, weight: 100 - s.weight },
              { name: this.canaryName, port, weight: s.weight },
            ],
          },
        ],
      },
    });
  }

  /**
   * Refuse to write an object that exists and is not this Rollout's (no ownerReference to its
   * uid): a Service someone else made, or another Rollout's. A forced apply would replace its
   * selector (its traffic to the rollout's pods) and add the Rollout as its owner (deleting the
   * Rollout would delete it). Missing objects are created.
   */
  async #mayWrite(kind: string, path: string): Promise<void> {
    if (!this.#owner) return;
    const r = await this.#api.request('GET', path);
    if (r.status === 404) return;
    if (r.status !== 200) throw new KubeApiError('GET', path, r);
    const refs = (JSON.parse(r.body) as { metadata?: { ownerReferences?: { uid?: string }[] } }).metadata
      ?.ownerReferences;
    if (refs?.some((o) => o.uid === this.#owner!.uid)) return;
    const name = path.slice(path.lastIndexOf('/') + 1);
    throw new HexmeshError(
      'HEXMESH_ERR_CONFLICT',
      `${kind} ${this.namespace}/${name} exists and is not this Rollout's (no ownerReference to ` +
        `Rollout ${String(this.#owner.name)}): not taken over; name another Service in the Rollout, ` +
        'or delete that one',
    );
  }

  /** The selector and ports of `<svc>` itself (read once). */
  async #serviceOf(): Promise<{ selector: Selector; ports: ServicePort[] }> {
    if (this.#target) return this.#target;
    const path = `/api/v1/namespaces/${this.namespace}/services/${this.service}`;
    const r = await this.#api.request('GET', path);
    if (r.status !== 200) throw new KubeApiError('GET', path, r);
    const spec = (JSON.parse(r.body) as { spec?: { selector?: Selector; ports?: ServicePort[] } }).spec;
    const ports = (spec?.ports ?? []).map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      port: p.port,
      ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}),
      protocol: p.protocol ?? 'TCP',
      ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
    }));
    this.#target = { selector: spec?.selector ?? {}, ports };
    return this.#target;
  }
}
