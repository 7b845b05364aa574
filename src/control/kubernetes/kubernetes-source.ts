/**
 * Kubernetes as the source of truth (`hexmesh control --kubernetes`): informers on Services,
 * EndpointSlices, Gateway API HTTPRoutes/GRPCRoutes and hexmesh's CRDs mirror them into the
 * store, where the discovery server already watches — so a sidecar sees a new endpoint as
 * soon as the API server's watch event arrives. Status conditions go back to the objects.
 *
 * Level-based, as a Kubernetes controller: an event only names a key (a service, a route);
 * the key's reconcile reads the informers' caches and the store, and writes the difference.
 * A full resync runs when this replica becomes the mirror's leader (store lease, role
 * `kubernetes`), so changes made while no replica ran are caught up, and objects deleted
 * then are removed. Only what carries `hexmesh.io/source: kubernetes` is ever deleted, and a
 * key only once the informers it reads have listed everything (`#ready`).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { KEYS, type Store } from '../../store/store.ts';
import type { Instance } from '../catalog/instance.ts';
import { LeaderElection } from '../leader.ts';
import type { StoredDoc } from '../validate-resource.ts';
import { KubeApi, KubeApiError, type KubeInformer } from './kube-api.ts';
import { LeaseElection } from './lease-election.ts';
import {
  SOURCE_LABEL,
  SOURCE_VALUE,
  instanceEssence,
  mirroredResource,
  PORT_OF_LABEL,
  serviceResources,
  sliceInstances,
  type KubeServicePort,
  type PortService,
  type KubeEndpointSlice,
  type KubeObject,
} from './translate.ts';
import { HEXMESH_GROUP, HEXMESH_KINDS, HEXMESH_VERSION } from './crds.ts';

export interface KubernetesSourceOptions {
  store: Store;
  /** A kubeconfig file; absent: the pod's in-cluster service account. */
  kubeconfig?: string;
  /** This replica's id (leader key). */
  id: string;
  /** Mirror leader lease TTL (default 10 s). */
  leaderTtlMs?: number;
  /**
   * Elect the mirror's writer on a coordination.k8s.io Lease `<name>` in `namespace` (the
   * control plane's own; `hexmesh control --kubernetes` passes POD_NAMESPACE) instead of a
   * store lease: replicas then agree even when each has its own store.
   */
  lease?: { namespace: string; name?: string };
  /** Gateway API `controllerName` written into route status (default `hexmesh.io/mesh`). */
  controllerName?: string;
  now?: () => number;
  log?(msg: string): void;
}

const GATEWAY = { group: 'gateway.networking.k8s.io', version: 'v1' };
const ROUTE_KINDS = [
  { kind: 'HTTPRoute', plural: 'httproutes' },
  { kind: 'GRPCRoute', plural: 'grpcroutes' },
] as const;
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const RETRY_MS = 2000;

interface Mirrored {
  kind: string;
  /** The informer's name (its resource's plural). */
  plural: string;
  apiVersion: string;
  /** Collection path of the objects, `/apis/<group>/<version>/<plural>`. */
  path: string;
  route: boolean;
  informer: KubeInformer<KubernetesObject>;
}

interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export class KubernetesSource {
  readonly #opts: KubernetesSourceOptions;
  readonly #store: Store;
  readonly #now: () => number;
  readonly #log: (msg: string) => void;
  readonly #controller: string;
  #api: KubeApi | undefined;
  #services: KubeInformer<KubernetesObject> | undefined;
  #slices: KubeInformer<KubernetesObject> | undefined;
  readonly #mirrored = new Map<string, Mirrored>();
  #leader: Pick<LeaderElection, 'isLeader' | 'start' | 'close'> | undefined;
  readonly #pending = new Set<string>();
  #draining: Promise<void> | undefined;
  readonly #retries = new Set<NodeJS.Timeout>();
  readonly #lastError = new Map<string, string>();
  /** Informers (by name) whose first list is in: only then is an absence in their cache true. */
  readonly #listed = new Set<string>();
  #closed = false;

  constructor(opts: KubernetesSourceOptions) {
    this.#opts = opts;
    this.#store = opts.store;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log ?? (() => {});
    this.#controller = opts.controllerName ?? 'hexmesh.io/mesh';
  }

  /** The API server's URL (after start). */
  get server(): string {
    return this.#api?.server ?? '';
  }

  get isLeader(): boolean {
    return this.#leader?.isLeader ?? false;
  }

  /** Load the kubeconfig, start the informers (each retries on its own), then campaign. */
  async start(): Promise<void> {
    const api = (this.#api = await KubeApi.load(this.#opts.kubeconfig));
    this.#services = this.#watch('services', api.informer('/api/v1/services'), (o) =>
      this.#enqueueService(o),
    );
    this.#slices = this.#watch(
      'endpointslices',
      api.informer('/apis/discovery.k8s.io/v1/endpointslices'),
      (o) => {
        const svc = o.metadata?.labels?.[SERVICE_NAME_LABEL];
        if (svc) this.#enqueue(`svc:${o.metadata?.namespace}/${svc}`);
      },
    );
    const kinds = [
      ...ROUTE_KINDS.map((r) => ({ ...r, ...GATEWAY, route: true })),
      ...HEXMESH_KINDS.map((k) => ({
        kind: k.kind,
        plural: k.plural,
        group: HEXMESH_GROUP,
        version: HEXMESH_VERSION,
        route: false,
      })),
    ];
    for (const k of kinds) {
      const path = `/apis/${k.group}/${k.version}/${k.plural}`;
      const informer = this.#watch(k.plural, api.informer(path), (o) =>
        this.#enqueue(`res:${k.kind}/${o.metadata?.namespace}/${o.metadata?.name}`),
      );
      this.#mirrored.set(k.kind, {
        kind: k.kind,
        plural: k.plural,
        apiVersion: `${k.group}/${k.version}`,
        path,
        route: k.route,
        informer,
      });
    }
    const onChange = (leader: boolean) => this.#onLeader(leader);
    this.#leader = this.#opts.lease
      ? new LeaseElection(api, {
          namespace: this.#opts.lease.namespace,
          name: this.#opts.lease.name ?? 'hexmesh-kubernetes',
          id: this.#opts.id,
          leaseDurationMs: this.#opts.leaderTtlMs ?? 15_000,
          onChange,
          onError: (e) => this.#log(`kubernetes: lease: ${(e as Error).message}`),
        })
      : new LeaderElection(this.#opts.store, {
          role: 'kubernetes',
          id: this.#opts.id,
          ttlMs: this.#opts.leaderTtlMs ?? 10_000,
          onChange,
        });
    await this.#leader.start();
  }

  #onLeader(leader: boolean): void {
    this.#log(`kubernetes: ${leader ? 'now writing the mirror (leader)' : 'no longer the mirror writer'}`);
    if (leader) void this.#resync();
  }

  /** Stop watching and resign (another replica's mirror takes over at once). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#retries) clearTimeout(t);
    const informers = [this.#services, this.#slices, ...[...this.#mirrored.values()].map((m) => m.informer)];
    await Promise.all(informers.map((i) => i?.stop().catch(() => {})));
    await this.#draining?.catch(() => {});
    await this.#leader?.close({ resign: true });
  }

  /**
   * Start an informer; on a broken list or watch, log once per distinct reason and start again.
   * Its first complete list (or a 404: a kind the API server does not serve has no objects)
   * marks it listed, and the leader then reconciles the keys it holds (`#resync`).
   */
  #watch(
    name: string,
    informer: KubeInformer<KubernetesObject>,
    onObject: (o: KubernetesObject) => void,
  ): KubeInformer<KubernetesObject> {
    informer.on('add', onObject);
    informer.on('update', onObject);
    informer.on('delete', onObject);
    const start = () => {
      // The library reports a failed list to 'error' listeners and still resolves start().
      let failed = false;
      const onError = (err: unknown) => {
        failed = true;
        if (err instanceof KubeApiError && err.status === 404) this.#onListed(name);
      };
      informer.on('error', onError);
      informer
        .start()
        .then(() => {
          if (!failed) this.#onListed(name);
        }, restart)
        .finally(() => informer.off('error', onError));
    };
    const restart = (err?: unknown) => {
      if (this.#closed) return;
      const msg = err instanceof Error ? err.message : String(err ?? 'watch ended');
      if (this.#lastError.get(name) !== msg) {
        this.#lastError.set(name, msg);
        this.#log(`kubernetes: ${name}: ${msg}; retrying every ${RETRY_MS / 1000} s`);
      }
      const t = setTimeout(() => {
        this.#retries.delete(t);
        if (!this.#closed) start();
      }, RETRY_MS);
      this.#retries.add(t);
    };
    informer.on('error', restart);
    informer.on('connect', () => {
      if (this.#lastError.delete(name)) this.#log(`kubernetes: ${name}: watching again`);
    });
    start();
    return informer;
  }

  #onListed(name: string): void {
    if (this.#listed.has(name)) return;
    this.#listed.add(name);
    if (!this.isLeader) return;
    if (name === 'services' || name === 'endpointslices') void this.#resync((key) => key.startsWith('svc:'));
    else {
      const kind = [...this.#mirrored.values()].find((m) => m.plural === name)?.kind;
      if (kind) void this.#resync((key) => key.startsWith(`res:${kind}/`));
    }
  }

  /**
   * Whether the informers a key is read from have listed everything once. Before that, an
   * object missing from a cache may only not be listed yet: reconciling would delete it from
   * the store (every endpoint of every Service, an AuthorizationPolicy) until the list came in.
   */
  #ready(key: string): boolean {
    if (key.startsWith('svc:')) return this.#listed.has('services') && this.#listed.has('endpointslices');
    const m = this.#mirrored.get(key.slice(4, key.indexOf('/')));
    return !m || this.#listed.has(m.plural);
  }

  #enqueueService(o: KubernetesObject): void {
    this.#enqueue(`svc:${o.metadata?.namespace}/${o.metadata?.name}`);
    // A route's ResolvedRefs depends on its backends existing.
    for (const m of this.#mirrored.values())
      if (m.route)
        for (const r of m.informer.list())
          this.#enqueue(`res:${m.kind}/${r.metadata?.namespace}/${r.metadata?.name}`);
  }

  #enqueue(key: string): void {
    if (this.#closed) return;
    this.#pending.add(key);
    this.#draining ??= this.#drain().finally(() => (this.#draining = undefined));
  }

  /** One key at a time, in arrival order; a failed key is retried after RETRY_MS. */
  async #drain(): Promise<void> {
    // Let a burst of events for the same key (a Service and its slices) collapse into one pass.
    await new Promise((r) => setImmediate(r));
    while (this.#pending.size && !this.#closed) {
      const key = this.#pending.values().next().value!;
      this.#pending.delete(key);
      // Not ready: its informer's first list enqueues it again (#onListed).
      if (!this.isLeader || !this.#ready(key)) continue;
      try {
        await this.#reconcile(key);
      } catch (e) {
        this.#log(`kubernetes: ${key}: ${(e as Error).message}; retrying`);
        const t = setTimeout(() => {
          this.#retries.delete(t);
          this.#enqueue(key);
        }, RETRY_MS);
        this.#retries.add(t);
      }
    }
  }

  /** Everything Kubernetes has, and everything we wrote before: every key (of `only`) once. */
  async #resync(only: (key: string) => boolean = () => true): Promise<void> {
    const enqueue = (key: string) => {
      if (only(key)) this.#enqueue(key);
    };
    try {
      for (const s of this.#services?.list() ?? [])
        enqueue(`svc:${s.metadata?.namespace}/${s.metadata?.name}`);
      for (const m of this.#mirrored.values())
        for (const o of m.informer.list())
          enqueue(`res:${m.kind}/${o.metadata?.namespace}/${o.metadata?.name}`);
      const res = await this.#store.range(KEYS.resources);
      for (const kv of res.kvs) {
        const doc = JSON.parse(kv.value) as StoredDoc;
        if (!fromKubernetes(doc)) continue;
        const id = kv.key.slice(KEYS.resources.length);
        enqueue(doc.kind === 'Service' ? `svc:${id.slice('Service/'.length)}` : `res:${id}`);
      }
      const ins = await this.#store.range(KEYS.instances);
      for (const kv of ins.kvs) {
        const i = JSON.parse(kv.value) as Instance;
        if (i.labels?.[SOURCE_LABEL] === SOURCE_VALUE) enqueue(`svc:${i.namespace}/${i.service}`);
      }
    } catch (e) {
      this.#log(`kubernetes: resync: ${(e as Error).message}; retrying`);
      const t = setTimeout(() => {
        this.#retries.delete(t);
        if (this.isLeader) void this.#resync(only);
      }, RETRY_MS);
      this.#retries.add(t);
    }
  }

  #reconcile(key: string): Promise<void> {
    return key.startsWith('svc:')
      ? this.#reconcileService(key.slice(4))
      : this.#reconcileResource(key.slice(4));
  }

  /**
   * A Service and its EndpointSlices → the Service resource and its catalog instances; a
   * multi-port Service → one Service per port (translate.ts `serviceResources`), and the
   * per-port Services of ports it no longer has are removed.
   */
  async #reconcileService(id: string): Promise<void> {
    const [ns, name] = id.split('/');
    const svc = this.#services?.get(name, ns) as KubeObject | undefined;
    if (!svc) {
      // A per-port Service (a resync found it in the store) belongs to its base Service.
      const cur = await this.#store.get(KEYS.resource('Service', ns, name));
      const base = cur ? (JSON.parse(cur.value) as StoredDoc).metadata.labels : undefined;
      const of = (base as Record<string, string> | undefined)?.[PORT_OF_LABEL];
      if (of && of !== name && this.#services?.get(of, ns)) return this.#reconcileService(`${ns}/${of}`);
    }
    const slices = svc
      ? ((this.#slices?.list(ns) ?? []) as KubeEndpointSlice[]).filter(
          (s) => s.metadata?.labels?.[SERVICE_NAME_LABEL] === name,
        )
      : [];
    let docs: PortService[] = [];
    try {
      docs = svc ? serviceResources(svc) : [];
    } catch (e) {
      this.#log(`kubernetes: Service ${id}: ${(e as Error).message}`);
    }
    const [base, ...perPort] = docs;
    await this.#syncService(ns, name, base, svc, slices);
    const wanted = new Set<string>();
    for (const p of perPort) {
      // A Kubernetes Service of that very name is its own: never overwritten by a port of ours.
      if (this.#services?.get(p.name, ns)) {
        this.#log(
          `kubernetes: Service ${id} port ${p.port.name ?? p.port.port}: ${p.name} is another Service; port not routed`,
        );
        continue;
      }
      wanted.add(p.name);
      await this.#syncService(ns, p.name, p, svc, slices);
    }
    const stored = await this.#store.range(`${KEYS.resources}Service/${ns}/`);
    for (const kv of stored.kvs) {
      const doc = JSON.parse(kv.value) as StoredDoc;
      const of = (doc.metadata.labels as Record<string, string> | undefined)?.[PORT_OF_LABEL];
      if (of === name && fromKubernetes(doc) && !wanted.has(doc.metadata.name))
        await this.#syncService(ns, doc.metadata.name, undefined, undefined, []);
    }
  }

  /** One hexmesh Service (or its absence) and its instances, from the slices' port `p.port`. */
  async #syncService(
    ns: string,
    name: string,
    p: { doc: StoredDoc; port: KubeServicePort } | undefined,
    svc: KubeObject | undefined,
    slices: KubeEndpointSlice[],
  ): Promise<void> {
    await this.#putResource('Service', ns, name, p?.doc, svc);
    const now = new Date(this.#now()).toISOString();
    const desired = new Map(
      (svc && p ? sliceInstances(svc, slices, now, { service: name, port: p.port }) : []).map((i) => [
        i.id,
        i,
      ]),
    );
    const current = await this.#store.range(`${KEYS.instances}${ns}/${name}/`);
    for (const kv of current.kvs) {
      const have = JSON.parse(kv.value) as Instance;
      if (have.labels?.[SOURCE_LABEL] !== SOURCE_VALUE) continue;
      const want = desired.get(have.id);
      if (!want) await this.#store.delete(kv.key);
      else if (instanceEssence(want) === instanceEssence(have)) desired.delete(have.id);
      else
        desired.set(have.id, {
          ...want,
          registeredAt: have.registeredAt,
          statusChangedAt: have.status === want.status ? have.statusChangedAt : now,
        });
    }
    for (const i of desired.values()) await this.#store.put(KEYS.instance(ns, name, i.id), JSON.stringify(i));
  }

  /** A route or policy object → its resource, and its status conditions back on the object. */
  async #reconcileResource(id: string): Promise<void> {
    const [kind, ns, name] = id.split('/');
    const m = this.#mirrored.get(kind);
    if (!m) return;
    const obj = m.informer.get(name, ns) as KubeObject | undefined;
    if (!obj) return this.#putResource(kind, ns, name, undefined);
    const r = mirroredResource(
      obj,
      kind,
      kind === 'HTTPRoute' || kind === 'GRPCRoute'
        ? 'gateway.networking.k8s.io/v1'
        : `${HEXMESH_GROUP}/${HEXMESH_VERSION}`,
    );
    await this.#putResource(kind, ns, name, 'doc' in r ? r.doc : undefined, obj);
    const accepted: Condition =
      'doc' in r
        ? { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'hexmesh serves it to the mesh' }
        : {
            type: 'Accepted',
            status: 'False',
            reason: m.route ? 'UnsupportedValue' : 'Invalid',
            message: r.error,
          };
    if (m.route) await this.#writeRouteStatus(m, obj, accepted);
    else await this.#writeStatus(m, obj, [accepted]);
  }

  /** Write (or delete) our resource when it differs; a resource written by hand is left alone. */
  async #putResource(
    kind: string,
    ns: string,
    name: string,
    doc: StoredDoc | undefined,
    obj?: KubeObject,
  ): Promise<void> {
    const key = KEYS.resource(kind, ns, name);
    const cur = await this.#store.get(key);
    const curDoc = cur ? (JSON.parse(cur.value) as StoredDoc) : undefined;
    const ours = !curDoc || fromKubernetes(curDoc);
    if (!ours) {
      if (doc)
        this.#log(`kubernetes: ${kind} ${ns}/${name} exists in hexmesh (not from Kubernetes): left as it is`);
      return;
    }
    if (!doc) {
      if (cur) await this.#store.delete(key);
      return;
    }
    const created = obj?.metadata?.creationTimestamp;
    const full: StoredDoc = {
      ...doc,
      metadata: {
        ...doc.metadata,
        ...(created ? { creationTimestamp: new Date(created).toISOString() } : {}),
      },
    };
    const text = JSON.stringify(full);
    if (cur?.value !== text) await this.#store.put(key, text);
  }

  /**
   * Gateway API route status: one `parents[]` entry per Service parent (GAMMA), ours marked
   * by controllerName; entries of other controllers (a Gateway's) are kept as they are.
   */
  async #writeRouteStatus(m: Mirrored, obj: KubeObject, accepted: Condition): Promise<void> {
    const ns = obj.metadata?.namespace ?? 'default';
    const refs = (
      (obj.spec?.parentRefs ?? []) as {
        group?: string;
        kind?: string;
        name: string;
        namespace?: string;
        port?: number;
        sectionName?: string;
      }[]
    ).filter((p) => (p.kind ?? 'Gateway') === 'Service' && (p.group ?? '') === '');
    const missing = this.#missingBackends(obj, ns);
    const resolved: Condition = missing.length
      ? {
          type: 'ResolvedRefs',
          status: 'False',
          reason: 'BackendNotFound',
          message: `no Service ${missing.join(', ')}`,
        }
      : {
          type: 'ResolvedRefs',
          status: 'True',
          reason: 'ResolvedRefs',
          message: 'every backend Service exists',
        };
    const prev = (obj.status?.parents ?? []) as {
      controllerName?: string;
      parentRef?: Record<string, unknown>;
      conditions?: Condition[];
    }[];
    const others = prev.filter((p) => p.controllerName !== this.#controller);
    const ours = refs.map((ref) => {
      const before = prev.find((p) => p.controllerName === this.#controller && sameRef(p.parentRef, ref, ns));
      const parentAccepted =
        accepted.status === 'True' && !this.#services?.get(ref.name, ref.namespace ?? ns)
          ? {
              ...accepted,
              status: 'False' as const,
              reason: 'NoMatchingParent',
              message: `no Service ${ref.namespace ?? ns}/${ref.name}`,
            }
          : accepted;
      return {
        parentRef: ref,
        controllerName: this.#controller,
        conditions: this.#conditions(
          [parentAccepted, resolved],
          before?.conditions,
          obj.metadata?.generation,
        ),
      };
    });
    const next = [...others, ...ours];
    if (JSON.stringify(next) === JSON.stringify(prev)) return;
    await this.#patchStatus(m, obj, { parents: next });
  }

  /** hexmesh CRD status: `conditions` and `observedGeneration`. */
  async #writeStatus(m: Mirrored, obj: KubeObject, conditions: Condition[]): Promise<void> {
    const prev = (obj.status?.conditions ?? []) as Condition[];
    const ours = this.#conditions(conditions, prev, obj.metadata?.generation);
    // Conditions of other writers (a Rollout's Progressing, deployment-rollouts.ts) stay, in place.
    const next = [
      ...prev.map((c) => ours.find((o) => o.type === c.type) ?? c),
      ...ours.filter((o) => !prev.some((c) => c.type === o.type)),
    ];
    if (
      JSON.stringify(next) === JSON.stringify(prev) &&
      obj.status?.observedGeneration === obj.metadata?.generation
    )
      return;
    await this.#patchStatus(m, obj, {
      ...obj.status,
      conditions: next,
      observedGeneration: obj.metadata?.generation,
    });
  }

  /** metav1.Condition list: lastTransitionTime kept while the status stays the same. */
  #conditions(next: Condition[], prev: Condition[] | undefined, generation: number | undefined): Condition[] {
    const now = new Date(Math.floor(this.#now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    return next.map((c) => {
      const before = prev?.find((p) => p.type === c.type);
      return {
        type: c.type,
        status: c.status,
        reason: c.reason,
        message: c.message.slice(0, 32_000),
        lastTransitionTime:
          before && before.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : now,
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
      };
    });
  }

  /** Merge-patch the status subresource, conditional on the resourceVersion we read. */
  async #patchStatus(m: Mirrored, obj: KubeObject, status: Record<string, unknown>): Promise<void> {
    const ns = obj.metadata?.namespace;
    const plural = m.path.slice(m.path.lastIndexOf('/') + 1);
    const path = `${m.path.slice(0, m.path.lastIndexOf('/'))}/namespaces/${ns}/${plural}/${obj.metadata?.name}/status`;
    const r = await this.#api!.request(
      'PATCH',
      path,
      { metadata: { resourceVersion: obj.metadata?.resourceVersion }, status },
      'application/merge-patch+json',
    );
    // 409: the object changed since the cache saw it; its watch event requeues the key.
    // 404: deleted meanwhile. Both end here.
    if (r.status === 409 || r.status === 404) return;
    if (r.status < 200 || r.status > 299) throw new KubeApiError('PATCH', path, r);
  }

  /** Backend Services a route names that Kubernetes does not have (`ns/name`). */
  #missingBackends(obj: KubeObject, ns: string): string[] {
    const missing = new Set<string>();
    for (const rule of (obj.spec?.rules ?? []) as {
      backendRefs?: { group?: string; kind?: string; name: string; namespace?: string }[];
    }[])
      for (const b of rule.backendRefs ?? [])
        if ((b.kind ?? 'Service') === 'Service' && !this.#services?.get(b.name, b.namespace ?? ns))
          missing.add(`${b.namespace ?? ns}/${b.name}`);
    return [...missing];
  }
}

function sameRef(a: Record<string, unknown> | undefined, b: Record<string, unknown>, ns: string): boolean {
  return (
    !!a &&
    a.name === b.name &&
    (a.namespace ?? ns) === (b.namespace ?? ns) &&
    (a.port ?? null) === (b.port ?? null)
  );
}

function fromKubernetes(doc: StoredDoc): boolean {
  const labels = doc.metadata?.labels as Record<string, string> | undefined;
  return labels?.[SOURCE_LABEL] === SOURCE_VALUE;
}
