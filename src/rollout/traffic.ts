/**
 * The routing a rollout owns for its service, as ordinary mesh resources written through
 * the control plane API: Services `<svc>-stable` and `<svc>-canary` (instances of `<svc>`
 * selected by labels — the revision label), and an HTTPRoute `<svc>-rollout` attached to
 * `<svc>` that splits its traffic between them by weight. Each change is one `/v1/apply`,
 * so a selector switch and a weight change land in the same store revision.
 */
import type { ControlClient, StoredResource } from '../cli/client/control-client.ts';

export type Selector = Readonly<Record<string, string>>;

export interface TrafficState {
  stable: Selector;
  canary: Selector;
  /** Percent of traffic to the canary Service. */
  weight: number;
  /** Blue/green: a preview Service selecting the new revision. */
  preview?: { name: string; selector: Selector };
}

/** Where a rollout's routing goes: the control plane API (RolloutTraffic), or Kubernetes objects. */
export interface TrafficWriter {
  apply(s: TrafficState): Promise<void>;
}

export class RolloutTraffic implements TrafficWriter {
  readonly #client: ControlClient;
  readonly namespace: string;
  readonly service: string;
  #ports: unknown[] | undefined;

  constructor(client: ControlClient, namespace: string, service: string) {
    this.#client = client;
    this.namespace = namespace;
    this.service = service;
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

  /** Write the Services and the route for `s` (created on first use). */
  async apply(s: TrafficState): Promise<void> {
    const ports = await this.#servicePorts();
    const meta = (name: string) => ({
      name,
      namespace: this.namespace,
      labels: { 'hexmesh.io/managed-by': 'rollout', 'hexmesh.io/rollout-service': this.service },
    });
    const svc = (name: string, selector: Selector) => ({
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'Service',
      metadata: meta(name),
      spec: { ports, instancesOf: this.service, selector: { ...selector } },
    });
    const docs: unknown[] = [
      svc(this.stableName, s.stable),
      svc(this.canaryName, s.canary),
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: meta(this.routeName),
        spec: {
          parentRefs: [{ kind: 'Service', name: this.service }],
          rules: [
            {
              backendRefs: [
                { kind: 'Service', name: this.stableName, weight: 100 - s.weight },
                { kind: 'Service', name: this.canaryName, weight: s.weight },
              ],
            },
          ],
        },
      },
    ];
    if (s.preview) docs.push(svc(s.preview.name, s.preview.selector));
    await this.#client.apply(docs);
  }

  /** The ports of the service's own Service resource, or http/80. */
  async #servicePorts(): Promise<unknown[]> {
    if (this.#ports) return this.#ports;
    try {
      const r = await this.#client.request<StoredResource>(
        'GET',
        `/v1/resources/Service/${this.namespace}/${this.service}`,
        { accept: [404] },
      );
      const ports = r.status === 200 ? (r.body.spec as { ports?: unknown[] }).ports : undefined;
      this.#ports = Array.isArray(ports) && ports.length ? ports : [{ port: 80, protocol: 'http' }];
    } catch {
      return [{ port: 80, protocol: 'http' }];
    }
    return this.#ports;
  }
}
