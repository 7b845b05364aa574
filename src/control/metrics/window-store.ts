/**
 * The control plane's recent-history store for request metrics: per-series rings of
 * counter increases (see delta-ring.ts), fed with the raw counter values of each scrape.
 *
 * Only what the views need is kept: `hexmesh_requests_total` reduced to success or not
 * (status < 500 and gRPC status 0 or none), and the `hexmesh_request_duration_seconds`
 * buckets. Series of all proxies that share labels are summed into one ring (instances of
 * a service add up), keyed by the reporting proxy's namespace, instance id, version and
 * revision labels plus direction, source, destination, route and TLS — so a view can sum
 * a service's instances, or split them by version or by instance (`hexmesh stat --by`). A proxy that disappears leaves its history behind; its
 * last raw values are forgotten.
 *
 * Memory is bounded: at most `maxSeries` rings (default 5000, ~22 MiB at 1 h / 10 s);
 * increases of series beyond the cap are dropped and counted in `droppedSamples`.
 */
import { DeltaRing } from './delta-ring.ts';

/** The labels a stored series is summed over. */
export interface SeriesLabels {
  /** Namespace of the proxy that reported it. */
  readonly namespace: string;
  readonly direction: string;
  readonly src: string;
  readonly dst: string;
  readonly route: string;
  readonly tls: boolean;
  /** Id of the reporting proxy's instance ('' when unknown). */
  readonly instance: string;
  /** Its `version` label ('' without one). */
  readonly version: string;
  /** Its rollout revision label (`hexmesh.io/revision`; '' without one). */
  readonly revision: string;
  /** Its Kubernetes Deployment (`hexmesh.io/deployment`; '' without one). */
  readonly deployment: string;
}

/** Who reported a scrape: the instance, and its version, revision and Deployment labels. */
export interface SeriesOrigin {
  instance: string;
  version: string;
  revision: string;
  deployment?: string;
}

const NO_ORIGIN: SeriesOrigin = { instance: '', version: '', revision: '' };

interface RequestSeries extends SeriesLabels {
  readonly ok: boolean;
  readonly ring: DeltaRing;
}

interface BucketSeries extends SeriesLabels {
  /** Upper bound in seconds (Infinity for +Inf). */
  readonly le: number;
  readonly ring: DeltaRing;
}

/** Figures summed over a window for one group of series. */
export interface Aggregate {
  requests: number;
  ok: number;
  tls: number;
  /** Cumulative duration bucket increases, by `le`. */
  buckets: Map<number, number>;
}

export interface WindowStoreOptions {
  /** Slot width (default 10 s). */
  resolutionMs?: number;
  /** History kept (default 1 h). */
  retentionMs?: number;
  /** Cap on stored series (default 5000). */
  maxSeries?: number;
  now?: () => number;
}

export const REQUESTS = 'hexmesh_requests_total';
export const BUCKETS = 'hexmesh_request_duration_seconds_bucket';

const SEP = '\u0000';

/** Per reporting proxy: last raw counter values, to turn the next scrape into increases. */
export interface TargetCounters {
  last: Map<string, number>;
  /** False until the first scrape: its values are only a baseline. */
  primed: boolean;
}

export class WindowStore {
  readonly resolutionMs: number;
  readonly retentionMs: number;
  readonly maxSeries: number;
  /** Increases dropped because the series cap was reached. */
  droppedSamples = 0;
  readonly #slots: number;
  readonly #t0: number;
  readonly #now: () => number;
  readonly #requests = new Map<string, RequestSeries>();
  readonly #buckets = new Map<string, BucketSeries>();

  constructor(opts: WindowStoreOptions = {}) {
    this.resolutionMs = opts.resolutionMs ?? 10_000;
    this.retentionMs = opts.retentionMs ?? 3_600_000;
    this.maxSeries = opts.maxSeries ?? 5000;
    if (!(this.resolutionMs > 0)) throw new RangeError(`resolutionMs must be > 0, got ${this.resolutionMs}`);
    if (!(this.retentionMs >= this.resolutionMs))
      throw new RangeError(`retentionMs must be ≥ resolutionMs, got ${this.retentionMs}`);
    // +1: the slot being filled now is partial, so a full retention needs one more.
    this.#slots = Math.ceil(this.retentionMs / this.resolutionMs) + 1;
    this.#now = opts.now ?? Date.now;
    this.#t0 = this.#now();
  }

  /** Stored series (request + bucket rings). */
  get seriesCount(): number {
    return this.#requests.size + this.#buckets.size;
  }

  /** The absolute slot number of time `ms`. */
  slotOf(ms: number): number {
    return Math.max(0, Math.floor((ms - this.#t0) / this.resolutionMs));
  }

  /** Start time (ms) of absolute slot `slot`. */
  slotStart(slot: number): number {
    return this.#t0 + slot * this.resolutionMs;
  }

  /** A fresh per-target counter state. */
  static newTarget(): TargetCounters {
    return { last: new Map(), primed: false };
  }

  /**
   * Record one scrape of a proxy in `namespace`. `samples` yields the raw samples of the
   * two kept families; increases go to the slot of `atMs`. A counter lower than last
   * time was reset (proxy restarted): its whole value is the increase. A series new on a
   * primed target started from 0 since the last scrape. `origin` says which instance
   * reported (its series are kept apart from other instances').
   */
  ingest(
    target: TargetCounters,
    namespace: string,
    samples: Iterable<{ name: string; labels: Record<string, string>; value: number }>,
    atMs = this.#now(),
    origin: SeriesOrigin = NO_ORIGIN,
  ): void {
    const deployment = origin.deployment ?? '';
    const originKey = origin.instance + SEP + origin.version + SEP + origin.revision + SEP + deployment;
    const slot = this.slotOf(atMs);
    const next = new Map<string, number>();
    for (const s of samples) {
      const l = s.labels;
      const isReq = s.name === REQUESTS;
      if (!isReq && s.name !== BUCKETS) continue;
      if (!Number.isFinite(s.value)) continue;
      // The cardinality guard's all-"overflow" series belongs to no service: not shown.
      if (l.direction !== 'inbound' && l.direction !== 'outbound') continue;
      const raw =
        s.name +
        SEP +
        l.direction +
        SEP +
        l.src_service +
        SEP +
        l.dst_service +
        SEP +
        l.route +
        SEP +
        l.tls +
        SEP +
        (isReq ? `${l.status_code}${SEP}${l.grpc_status}` : l.le);
      next.set(raw, s.value);
      const prev = target.last.get(raw);
      let delta: number;
      if (prev === undefined) delta = target.primed ? s.value : 0;
      else delta = s.value >= prev ? s.value - prev : s.value;
      if (delta <= 0) continue;
      const base = {
        namespace,
        direction: l.direction ?? '',
        src: l.src_service ?? '',
        dst: l.dst_service ?? '',
        route: l.route ?? '',
        tls: l.tls === 'true',
        ...origin,
        deployment,
      };
      const key =
        namespace +
        SEP +
        originKey +
        SEP +
        base.direction +
        SEP +
        base.src +
        SEP +
        base.dst +
        SEP +
        base.route +
        SEP +
        l.tls +
        SEP;
      if (isReq) {
        const ok = isSuccess(l.status_code, l.grpc_status);
        const k = key + (ok ? '1' : '0');
        let series = this.#requests.get(k);
        if (!series) {
          if (this.seriesCount >= this.maxSeries) {
            this.droppedSamples++;
            continue;
          }
          series = { ...base, ok, ring: new DeltaRing(this.#slots) };
          this.#requests.set(k, series);
        }
        series.ring.add(slot, delta);
      } else {
        const le = l.le === '+Inf' ? Infinity : Number(l.le);
        if (Number.isNaN(le)) continue;
        const k = key + l.le;
        let series = this.#buckets.get(k);
        if (!series) {
          if (this.seriesCount >= this.maxSeries) {
            this.droppedSamples++;
            continue;
          }
          series = { ...base, le, ring: new DeltaRing(this.#slots) };
          this.#buckets.set(k, series);
        }
        series.ring.add(slot, delta);
      }
    }
    target.last = next;
    target.primed = true;
  }

  /** Slot range `[from, to]` covering the last `windowMs` (capped at the retention). */
  range(windowMs: number, nowMs = this.#now()): { from: number; to: number } {
    const to = this.slotOf(nowMs);
    const n = Math.max(1, Math.ceil(Math.min(windowMs, this.retentionMs) / this.resolutionMs));
    return { from: to - n + 1, to };
  }

  /**
   * Sum every series over slots `from..to`, grouped by `group` (undefined skips the
   * series). One pass over the stored series; no per-slot allocation.
   */
  aggregate(
    from: number,
    to: number,
    group: (s: SeriesLabels) => string | undefined,
  ): Map<string, Aggregate> {
    const out = new Map<string, Aggregate>();
    const get = (k: string): Aggregate => {
      let a = out.get(k);
      if (!a) out.set(k, (a = { requests: 0, ok: 0, tls: 0, buckets: new Map() }));
      return a;
    };
    for (const s of this.#requests.values()) {
      const k = group(s);
      if (k === undefined) continue;
      const v = s.ring.sum(from, to);
      if (v === 0) continue;
      const a = get(k);
      a.requests += v;
      if (s.ok) a.ok += v;
      if (s.tls) a.tls += v;
    }
    for (const s of this.#buckets.values()) {
      const k = group(s);
      if (k === undefined) continue;
      const v = s.ring.sum(from, to);
      if (v === 0) continue;
      const a = get(k);
      a.buckets.set(s.le, (a.buckets.get(s.le) ?? 0) + v);
    }
    return out;
  }

  /**
   * Per-step aggregates of the series `match` accepts, for slots `from..to` in steps of
   * `stepSlots` slots (the last step ends at `to`).
   */
  steps(from: number, to: number, stepSlots: number, match: (s: SeriesLabels) => boolean): Aggregate[] {
    const n = Math.max(1, Math.ceil((to - from + 1) / stepSlots));
    const out: Aggregate[] = Array.from({ length: n }, () => ({
      requests: 0,
      ok: 0,
      tls: 0,
      buckets: new Map<number, number>(),
    }));
    const first = to - n * stepSlots + 1;
    for (const s of this.#requests.values()) {
      if (!match(s)) continue;
      for (let i = 0; i < n; i++) {
        const v = s.ring.sum(first + i * stepSlots, first + (i + 1) * stepSlots - 1);
        if (v === 0) continue;
        out[i].requests += v;
        if (s.ok) out[i].ok += v;
        if (s.tls) out[i].tls += v;
      }
    }
    for (const s of this.#buckets.values()) {
      if (!match(s)) continue;
      for (let i = 0; i < n; i++) {
        const v = s.ring.sum(first + i * stepSlots, first + (i + 1) * stepSlots - 1);
        if (v !== 0) out[i].buckets.set(s.le, (out[i].buckets.get(s.le) ?? 0) + v);
      }
    }
    return out;
  }

  /** Drop every series (leadership lost: the next leader starts its own history). */
  clear(): void {
    this.#requests.clear();
    this.#buckets.clear();
  }
}

/** Success as the views count it: not a 5xx, and gRPC status 0 when there is one. */
export function isSuccess(statusCode: string | undefined, grpcStatus: string | undefined): boolean {
  const code = Number(statusCode);
  if (!(code < 500)) return false; // NaN ("overflow") counts as a failure: unknown is not success
  return grpcStatus === undefined || grpcStatus === '' || grpcStatus === '0';
}
