/**
 * One connected proxy: what it subscribed to, what it was last sent (to compute deltas),
 * and what it acknowledged. Messages are assembled from the views' pre-serialised JSON.
 */
import type { WebSocket } from 'ws';
import type { DestinationView } from './destination-views.ts';
import type { ResourceEntry } from './mesh-state.ts';
import type { NodeInfo } from './protocol.ts';
import type { Principal } from '../auth/api-auth.ts';

/** What `GET /v1/proxies` reports per connected proxy. */
export interface ProxyStatus {
  id: string;
  service: string;
  namespace: string;
  /** Version (store revision) of the last snapshot or delta sent. */
  version: number;
  /** Last version the proxy acknowledged (0: none yet). */
  acked: number;
  /** The last rejection, if the proxy refused an update since its last ack. */
  nack?: { version: number; error: string };
  subscriptions: number;
  connectedAt: string;
}

export class ProxySession {
  readonly ws: WebSocket;
  readonly connectedAt = new Date().toISOString();
  node: NodeInfo | undefined;
  /** The authenticated caller (src/control/auth); undefined with auth off. */
  principal: Principal | undefined;
  lease = 0;
  /** The address the stream comes from. */
  peer: string | undefined;
  /** Where its admin listener is: `peer` with the port the hello names. */
  adminAddress: string | undefined;
  /** Destinations the proxy asked for (plus its own service). */
  readonly explicit = new Set<string>();
  /** explicit + what their routes and policies pull in; what the proxy is sent. */
  effective = new Set<string>();
  #sentServices = new Map<string, string>();
  #sentResources = new Map<string, ResourceEntry>();
  version = 0;
  acked = 0;
  nack: { version: number; error: string } | undefined;
  /** Token bucket against message floods. */
  tokens: number;
  tokensAt = Date.now();
  alive = true;
  closed = false;
  /** Serialises store writes of this session (register, status). */
  writes: Promise<void> = Promise.resolve();

  constructor(ws: WebSocket, burst: number) {
    this.ws = ws;
    this.tokens = burst;
  }

  /**
   * The session's key among live streams: the id within the proxy's identity (namespace and
   * service), so one service's proxy can never replace another's stream by naming its id.
   */
  get key(): string {
    return `${this.node!.namespace}/${this.node!.service}/${this.node!.id}`;
  }

  /** The key of the proxy's own service (its inbound policies). */
  get self(): string {
    return `${this.node!.service}.${this.node!.namespace}`;
  }

  /** A full snapshot of the effective set; resets the delta baseline. */
  snapshot(version: number, view: (key: string) => DestinationView): string {
    const services = new Map<string, string>();
    const resources = new Map<string, ResourceEntry>();
    this.#collect(view, services, resources);
    this.#sentServices = services;
    this.#sentResources = resources;
    this.version = version;
    const subs = JSON.stringify([...this.effective].sort());
    return `{"type":"snapshot","version":${version},"services":[${[...services.values()].join(',')}],"resources":[${joinJson(resources.values())}],"subscriptions":${subs}}`;
  }

  /** The delta since the last message, or undefined when nothing this proxy sees changed. */
  delta(version: number, view: (key: string) => DestinationView): string | undefined {
    const services = new Map<string, string>();
    const resources = new Map<string, ResourceEntry>();
    this.#collect(view, services, resources);
    const upS: string[] = [];
    const rmS: string[] = [];
    const upR: ResourceEntry[] = [];
    const rmR: string[] = [];
    for (const [k, json] of services) if (this.#sentServices.get(k) !== json) upS.push(json);
    for (const k of this.#sentServices.keys()) if (!services.has(k)) rmS.push(k);
    for (const [id, r] of resources) if (this.#sentResources.get(id)?.json !== r.json) upR.push(r);
    for (const [id, r] of this.#sentResources)
      if (!resources.has(id))
        rmR.push(JSON.stringify({ kind: r.kind, namespace: r.namespace, name: r.name }));
    this.#sentServices = services;
    this.#sentResources = resources;
    if (!upS.length && !rmS.length && !upR.length && !rmR.length) return undefined;
    this.version = version;
    return `{"type":"delta","version":${version},"upserts":{"services":[${upS.join(',')}],"resources":[${joinJson(upR)}]},"removes":{"services":${JSON.stringify(rmS)},"resources":[${rmR.join(',')}]}}`;
  }

  #collect(
    view: (key: string) => DestinationView,
    services: Map<string, string>,
    resources: Map<string, ResourceEntry>,
  ): void {
    const self = this.self;
    for (const key of this.effective) {
      const v = view(key);
      if (v.serviceJson !== undefined) services.set(key, v.serviceJson);
      for (const r of v.resources) resources.set(r.id, r);
      // Inbound policies go to the service's own proxies only, not to its clients.
      if (key === self) for (const r of v.inbound) resources.set(r.id, r);
    }
  }

  status(): ProxyStatus {
    return {
      id: this.node?.id ?? '',
      service: this.node?.service ?? '',
      namespace: this.node?.namespace ?? '',
      version: this.version,
      acked: this.acked,
      ...(this.nack ? { nack: this.nack } : {}),
      subscriptions: this.effective.size,
      connectedAt: this.connectedAt,
    };
  }
}

function joinJson(rs: Iterable<ResourceEntry>): string {
  let out = '';
  for (const r of rs) out += (out ? ',' : '') + r.json;
  return out;
}
