/**
 * The service catalog over the store: register (leased), heartbeat, status reports,
 * deregister, and reads. Stateless: every replica can serve any call; concurrent writers
 * are resolved by compare-and-set on the key's modRevision.
 */
import { KEYS, StoreConflictError, type KeyValue, type Store } from '../../store/store.ts';
import { notFound } from '../http/error-response.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Resource } from '../../config/resources.ts';
import { inboundTlsMode } from '../../proxy/transport/mtls.ts';
import { validate } from '../../config/validate.ts';
import {
  addressAndLabelsSchema,
  DEFAULT_INSTANCE_TTL_MS,
  defaultInstanceId,
  type Instance,
  type InstanceStatus,
  type RegisterInput,
} from './instance.ts';

export interface ServiceSummary {
  name: string;
  namespace: string;
  instances: number;
  passing: number;
  warning: number;
  critical: number;
  /** Distinct `version` labels, sorted. */
  versions: string[];
}

const CAS_ATTEMPTS = 8;

export class Catalog {
  readonly #store: Store;
  readonly #now: () => number;

  constructor(store: Store, opts: { now?: () => number } = {}) {
    this.#store = store;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Register (or re-register) an instance. A new instance starts `critical` until its
   * first passing check (as Consul); re-registering keeps the current status so a
   * reconnecting sidecar does not flap its instance. With `lease`, the instance is attached
   * to that lease (the discovery stream's); otherwise a lease of `input.ttl` is granted.
   */
  async register(input: RegisterInput, opts: { lease?: number } = {}): Promise<Instance> {
    // A discovery hello arrives without the register schema: the address is still only an
    // address (templates render it into config lines), whoever writes the instance.
    validate(
      addressAndLabelsSchema,
      { address: input.address, labels: input.labels },
      'instance address and labels',
    );
    await this.#requireMeshPortIfStrict(input);
    const id = input.id ?? defaultInstanceId(input);
    const key = KEYS.instance(input.namespace, input.service, id);
    if (opts.lease !== undefined) return this.#put(input, key, id, opts.lease);
    const lease = await this.#store.grantLease(input.ttl ?? DEFAULT_INSTANCE_TTL_MS);
    try {
      return await this.#put(input, key, id, lease);
    } catch (e) {
      // Nothing holds the lease we granted: give it back now rather than leave it to its TTL
      // (a caller retrying a failing register would otherwise pile up live leases).
      await this.#store.revokeLease(lease).catch(() => {});
      throw e;
    }
  }

  /**
   * Under a STRICT PeerAuthentication the service's sidecars accept only mutual TLS, so an
   * instance without a mesh port (no sidecar: clients would send it plaintext, to whoever
   * registered it) is refused. The same rule the service's own sidecars enforce
   * (`inboundTlsMode`); destination views and client sidecars drop such endpoints too.
   */
  async #requireMeshPortIfStrict(input: RegisterInput): Promise<void> {
    if (input.meshPort !== undefined) return;
    const r = await this.#store.range(`${KEYS.resources}PeerAuthentication/${input.namespace}/`);
    const docs = r.kvs.flatMap((kv) => {
      try {
        return [JSON.parse(kv.value) as Resource];
      } catch {
        return [];
      }
    });
    if (inboundTlsMode(docs, input.service, input.namespace) === 'STRICT')
      throw new HexmeshError(
        'HEXMESH_ERR_DENIED',
        `service ${input.service} in namespace ${input.namespace} requires mutual TLS (PeerAuthentication STRICT): ` +
          'an instance without a meshPort (no sidecar) cannot be registered',
      );
  }

  /** Write the instance attached to `lease` by compare-and-set on the key's modRevision. */
  async #put(input: RegisterInput, key: string, id: string, lease: number): Promise<Instance> {
    for (let attempt = 0; ; attempt++) {
      const kv = await this.#store.get(key);
      const prev = kv ? (JSON.parse(kv.value) as Instance) : undefined;
      const now = new Date(this.#now()).toISOString();
      const inst: Instance = {
        id,
        service: input.service,
        namespace: input.namespace,
        address: input.address,
        port: input.port,
        ...(input.meshPort !== undefined && { meshPort: input.meshPort }),
        ...(input.adminAddress !== undefined && { adminAddress: input.adminAddress }),
        labels: { ...input.labels },
        checks: [...input.checks],
        // No checks at all means nothing can fail: passing (as Consul's check-less services).
        status: prev?.status ?? (input.checks.length ? 'critical' : 'passing'),
        ...(prev?.output !== undefined && { output: prev.output }),
        registeredAt: prev?.registeredAt ?? now,
        statusChangedAt: prev?.statusChangedAt ?? now,
        ...(prev?.checkedAt !== undefined && { checkedAt: prev.checkedAt }),
        lease,
      };
      try {
        await this.#store.put(key, JSON.stringify(inst), { lease, prevModRevision: kv?.modRevision ?? 0 });
        return inst;
      } catch (e) {
        if (!(e instanceof StoreConflictError) || attempt >= CAS_ATTEMPTS) throw e;
      }
    }
  }

  /** Keep an instance's lease alive; 404 once it expired (the sidecar re-registers). */
  heartbeat(lease: number): Promise<void> {
    return this.#store.keepAlive(lease);
  }

  async deregister(namespace: string, service: string, id: string): Promise<void> {
    const r = await this.#store.delete(KEYS.instance(namespace, service, id));
    if (r.deleted === 0) throw notFound(`instance ${namespace}/${service}/${id}`);
  }

  /**
   * Record a check result reported by the instance's sidecar. Writes only when something
   * changed, except for instances with a TTL check, where the report is the TTL pass and
   * its time is recorded (the leader marks the instance critical when it lapses).
   */
  async setStatus(
    namespace: string,
    service: string,
    id: string,
    status: InstanceStatus,
    output?: string,
  ): Promise<Instance> {
    const key = KEYS.instance(namespace, service, id);
    for (let attempt = 0; ; attempt++) {
      const kv = await this.#store.get(key);
      if (!kv) throw notFound(`instance ${namespace}/${service}/${id}`);
      const prev = JSON.parse(kv.value) as Instance;
      const hasTtl = prev.checks.some((c) => c.type === 'ttl');
      if (prev.status === status && prev.output === output && !hasTtl) return prev;
      const now = new Date(this.#now()).toISOString();
      const next: Instance = {
        ...prev,
        status,
        statusChangedAt: prev.status === status ? prev.statusChangedAt : now,
        checkedAt: now,
      };
      if (output === undefined) delete next.output;
      else next.output = output;
      try {
        await this.#store.put(key, JSON.stringify(next), {
          lease: kv.lease || undefined,
          prevModRevision: kv.modRevision,
        });
        return next;
      } catch (e) {
        if (!(e instanceof StoreConflictError) || attempt >= CAS_ATTEMPTS) throw e;
      }
    }
  }

  /** Instances under a key prefix (all, a namespace, or one service), with the read's revision. */
  async list(
    namespace?: string,
    service?: string,
  ): Promise<{ instances: Instance[]; kvs: readonly KeyValue[]; revision: number }> {
    const prefix =
      namespace === undefined
        ? KEYS.instances
        : service === undefined
          ? `${KEYS.instances}${namespace}/`
          : `${KEYS.instances}${namespace}/${service}/`;
    const r = await this.#store.range(prefix);
    return {
      instances: r.kvs.map((kv) => JSON.parse(kv.value) as Instance),
      kvs: r.kvs,
      revision: r.revision,
    };
  }

  /** One line per service: instance counts by status and the versions present. */
  static summarize(instances: readonly Instance[]): ServiceSummary[] {
    const by = new Map<string, ServiceSummary & { v: Set<string> }>();
    for (const i of instances) {
      const k = `${i.namespace}/${i.service}`;
      let s = by.get(k);
      if (!s) {
        s = {
          name: i.service,
          namespace: i.namespace,
          instances: 0,
          passing: 0,
          warning: 0,
          critical: 0,
          versions: [],
          v: new Set(),
        };
        by.set(k, s);
      }
      s.instances++;
      s[i.status]++;
      if (i.labels.version) s.v.add(i.labels.version);
    }
    return [...by.values()]
      .map(({ v, ...s }) => ({ ...s, versions: [...v].sort() }))
      .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  }
}
