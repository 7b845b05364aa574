/**
 * Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection: the
 * leader writes its identity and renew time into the Lease every `renewMs`; a candidate
 * takes the Lease over (compare-and-set on its resourceVersion) once it has seen the record
 * unchanged for a whole `leaseDurationMs` — timed by its own clock from when it saw it, so
 * clocks need not agree. `isLeader` turns false as soon as a renewal is a lease duration
 * old, before another replica can have taken over.
 */
import { KubeApiError, type KubeApi } from './kube-api.ts';

export interface LeaseElectionOptions {
  /** Namespace and name of the Lease. */
  namespace: string;
  name: string;
  /** This replica's identity (holderIdentity). */
  id: string;
  /** How long a leader's Lease holds without renewal (default 15 s, as client-go). */
  leaseDurationMs?: number;
  /** Renewal period (default a third of the duration). */
  renewMs?: number;
  onChange?(leader: boolean): void;
  onError?(err: unknown): void;
  now?: () => number;
}

interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** MicroTime, as the API server writes it. */
const microTime = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');

export class LeaseElection {
  readonly #api: KubeApi;
  readonly #opts: LeaseElectionOptions;
  readonly #duration: number;
  readonly #now: () => number;
  readonly #path: string;
  #leader = false;
  #renewedAt = 0;
  /** The last record seen (holder + renewTime) and when this replica first saw it. */
  #observed: { key: string; at: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;
  #closed = false;

  constructor(api: KubeApi, opts: LeaseElectionOptions) {
    this.#api = api;
    this.#opts = opts;
    this.#duration = opts.leaseDurationMs ?? 15_000;
    this.#now = opts.now ?? Date.now;
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
  }

  get isLeader(): boolean {
    return this.#leader && this.#now() - this.#renewedAt < this.#duration;
  }

  /** Campaign; returns after the first attempt. */
  async start(): Promise<void> {
    await this.#tick();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    const period = this.#opts.renewMs ?? Math.max(100, Math.floor(this.#duration / 3));
    this.#timer = setTimeout(() => void this.#tick().finally(() => this.#schedule()), period);
  }

  #tick(): Promise<void> {
    this.#inflight ??= this.#attempt()
      .catch((e) => this.#opts.onError?.(e))
      .finally(() => {
        this.#inflight = undefined;
        this.#set(this.isLeader);
      });
    return this.#inflight;
  }

  async #attempt(): Promise<void> {
    const sent = this.#now();
    const r = await this.#api.request('GET', `${this.#path}/${this.#opts.name}`);
    if (r.status === 404) {
      const created = await this.#api.request('POST', this.#path, this.#record(undefined, sent));
      if (created.status === 201) return this.#won(sent);
      if (created.status !== 409) throw new KubeApiError('POST', this.#path, created);
      return;
    }
    if (r.status !== 200) throw new KubeApiError('GET', `${this.#path}/${this.#opts.name}`, r);
    const lease = JSON.parse(r.body) as LeaseObject;
    const holder = lease.spec.holderIdentity ?? '';
    const key = `${holder}|${lease.spec.renewTime ?? ''}`;
    if (this.#observed?.key !== key) this.#observed = { key, at: sent };
    const expired = holder === '' || sent - this.#observed.at >= this.#duration;
    if (holder !== this.#opts.id && !expired) {
      this.#leader = false;
      return;
    }
    const path = `${this.#path}/${this.#opts.name}`;
    const put = await this.#api.request('PUT', path, this.#record(lease, sent));
    if (put.status === 200) return this.#won(sent);
    // 409: someone else wrote first; the next tick reads who.
    if (put.status === 409) {
      this.#leader = false;
      return;
    }
    throw new KubeApiError('PUT', path, put);
  }

  #won(sent: number): void {
    this.#leader = true;
    this.#renewedAt = sent;
  }

  #record(prev: LeaseObject | undefined, now: number): LeaseObject {
    const mine = prev?.spec.holderIdentity === this.#opts.id;
    return {
      ...(prev ?? {}),
      metadata: {
        name: this.#opts.name,
        namespace: this.#opts.namespace,
        ...(prev?.metadata.resourceVersion ? { resourceVersion: prev.metadata.resourceVersion } : {}),
      },
      spec: {
        holderIdentity: this.#opts.id,
        leaseDurationSeconds: Math.max(1, Math.ceil(this.#duration / 1000)),
        acquireTime: mine && prev?.spec.acquireTime ? prev.spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (prev?.spec.leaseTransitions ?? 0) + (prev && !mine ? 1 : 0),
      },
      ...(prev ? {} : { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' }),
    } as LeaseObject;
  }

  #set(leader: boolean): void {
    if (leader === this.#wasLeader) return;
    this.#wasLeader = leader;
    this.#opts.onChange?.(leader);
  }
  #wasLeader = false;

  /**
   * Stop campaigning. `resign`: clear holderIdentity so another replica takes over at its
   * next renewal tick instead of after a lease duration. Idempotent.
   */
  async close(opts: { resign?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#inflight;
    const was = this.#leader;
    this.#leader = false;
    this.#set(false);
    if (!was || !opts.resign) return;
    const path = `${this.#path}/${this.#opts.name}`;
    const r = await this.#api.request('GET', path);
    if (r.status !== 200) return;
    const lease = JSON.parse(r.body) as LeaseObject;
    if (lease.spec.holderIdentity !== this.#opts.id) return;
    await this.#api.request('PUT', path, {
      ...lease,
      spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 },
    });
  }
}
