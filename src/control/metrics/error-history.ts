/**
 * The control plane's recent history of failed requests (`/v1/stats/errors`, `hexmesh stat
 * --errors`, the dashboard's "Recent errors"): fed by the same scrapes as the window store,
 * it keeps what the window store reduces away — each failure's HTTP status and gRPC status
 * from `hexmesh_requests_total`, and each `x-hexmesh-error` code of a response the proxy
 * made up from `hexmesh_synthetic_responses_total` — per reporting instance, as rings of
 * increases plus the time of the last scrape that saw one more.
 *
 * Only failures are kept (not a 5xx and gRPC status 0 or none is success, as the views
 * count it), so the series are few; at most `maxSeries` (default 2000), beyond which
 * increases are dropped and counted in `droppedSamples`.
 */
import { DeltaRing } from './delta-ring.ts';
import { REQUESTS, isSuccess, type SeriesOrigin, type TargetCounters } from './window-store.ts';

export const SYNTHETIC = 'hexmesh_synthetic_responses_total';

/** One kept series: a failed status, or a synthetic-response code, as one proxy reported it. */
export interface ErrorSeries extends SeriesOrigin {
  /** Namespace of the reporting proxy. */
  readonly namespace: string;
  readonly direction: string;
  /**
   * The caller. A synthetic-response family has no caller label: outbound, the reporting
   * proxy is the caller (its service); inbound, '' (unknown).
   */
  readonly src: string;
  readonly dst: string;
  /** HTTP status ('' for a synthetic-response series). */
  readonly status: string;
  /** gRPC status ('' when not gRPC, or for a synthetic-response series). */
  readonly grpcStatus: string;
  /** The `x-hexmesh-error` code ('' for a status series). */
  readonly kind: string;
  readonly ring: DeltaRing;
  /** Epoch ms of the last scrape that saw this series grow. */
  lastSeen: number;
}

const SEP = '\u0000';

export class ErrorHistory {
  droppedSamples = 0;
  readonly #series = new Map<string, ErrorSeries>();
  readonly #slots: number;

  constructor(
    /** Slot numbering and sizing shared with the window store (same scrapes, same slots). */
    readonly slotOf: (ms: number) => number,
    slots: number,
    readonly maxSeries = 2000,
  ) {
    this.#slots = slots;
  }

  get seriesCount(): number {
    return this.#series.size;
  }

  /**
   * Record one scrape (raw samples of `hexmesh_requests_total` and the synthetic-response
   * family) of a proxy in `namespace`; counters as in WindowStore.ingest (a first scrape is
   * a baseline, a lower value is a reset). `reporter` is the service of the reporting proxy.
   */
  ingest(
    target: TargetCounters,
    namespace: string,
    samples: Iterable<{ name: string; labels: Record<string, string>; value: number }>,
    atMs: number,
    origin: SeriesOrigin,
    reporter: string,
  ): void {
    const slot = this.slotOf(atMs);
    const next = new Map<string, number>();
    for (const s of samples) {
      const l = s.labels;
      const isReq = s.name === REQUESTS;
      if (!isReq && s.name !== SYNTHETIC) continue;
      if (!Number.isFinite(s.value)) continue;
      if (l.direction !== 'inbound' && l.direction !== 'outbound') continue;
      if (isReq && isSuccess(l.status_code, l.grpc_status)) continue;
      const fields = {
        direction: l.direction,
        src: isReq ? (l.src_service ?? '') : l.direction === 'outbound' ? reporter : '',
        dst: l.dst_service ?? '',
        status: isReq ? (l.status_code ?? '') : '',
        grpcStatus: isReq ? (l.grpc_status ?? '') : '',
        kind: isReq ? '' : (l.code ?? ''),
      };
      // One raw key per sample (route and TLS included); the stored series sum over them.
      const raw = [
        s.name,
        fields.direction,
        fields.src,
        fields.dst,
        fields.status,
        fields.grpcStatus,
        fields.kind,
        isReq ? l.route : '',
        isReq ? l.tls : '',
      ].join(SEP);
      next.set(raw, s.value);
    }
    for (const [raw, value] of next) {
      const prev = target.last.get(raw);
      const delta = prev === undefined ? (target.primed ? value : 0) : value >= prev ? value - prev : value;
      if (delta <= 0) continue;
      const [, direction, src, dst, status, grpcStatus, kind] = raw.split(SEP);
      const key = [
        namespace,
        origin.instance,
        origin.version,
        origin.revision,
        direction,
        src,
        dst,
        status,
        grpcStatus,
        kind,
      ].join(SEP);
      let series = this.#series.get(key);
      if (!series) {
        if (this.#series.size >= this.maxSeries) {
          this.droppedSamples++;
          continue;
        }
        series = {
          namespace,
          ...origin,
          direction,
          src,
          dst,
          status,
          grpcStatus,
          kind,
          ring: new DeltaRing(this.#slots),
          lastSeen: atMs,
        };
        this.#series.set(key, series);
      }
      series.ring.add(slot, delta);
      series.lastSeen = Math.max(series.lastSeen, atMs);
    }
    target.last = next;
    target.primed = true;
  }

  /** Every kept series with its count over slots `from..to` (those with none left out). */
  *counts(from: number, to: number): Generator<[ErrorSeries, number]> {
    for (const s of this.#series.values()) {
      const n = s.ring.sum(from, to);
      if (n > 0) yield [s, n];
    }
  }

  clear(): void {
    this.#series.clear();
  }
}
