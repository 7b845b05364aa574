/**
 * The per-request series: `hexmesh_requests_total` and
 * `hexmesh_request_duration_seconds`, cached so that recording one request costs
 * a few Map lookups and one inc + one observe, with no key string built and no
 * label object allocated (children are bound once per label set and kept; they are
 * lean-metric.ts children, since prom-client's allocate and hash on every call).
 */
import type { LeanCounter, LeanCounterChild, LeanHistogram, LeanHistogramChild } from './lean-metric.ts';
import type { Direction } from '../proxy/core/dispatch.ts';
import { OVERFLOW, SeriesBudget } from './cardinality-guard.ts';

export type RequestLabel =
  'direction' | 'src_service' | 'dst_service' | 'route' | 'status_code' | 'grpc_status' | 'tls';
export type DurationLabel = 'direction' | 'src_service' | 'dst_service' | 'route' | 'tls';

/** gRPC status codes are 0..16; anything else in a `grpc-status` is labelled `invalid`. */
const GRPC_INVALID = 17;
/** `grpc_status` label values by index; index -1 (no gRPC status) is the empty label. */
const GRPC_LABELS: readonly string[] = [...Array.from({ length: 17 }, (_, i) => String(i)), 'invalid'];

/**
 * Parse a `grpc-status` value into 0..16, {@link GRPC_INVALID} for garbage, or -1
 * when there is none. No regex, no allocation: it runs once per gRPC request.
 */
export function grpcStatusIndex(value: string | string[] | undefined): number {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return -1;
  if (v.length === 0 || v.length > 2) return GRPC_INVALID;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return GRPC_INVALID;
    n = n * 10 + c;
  }
  return n <= 16 ? n : GRPC_INVALID;
}

/** The `grpc_status` label value for an index from {@link grpcStatusIndex}. */
export function grpcStatusLabel(index: number): string {
  return index < 0 ? '' : GRPC_LABELS[index];
}

/**
 * One (direction, src, dst, route, tls) combination. Hold on to it when a
 * connection serves many requests of the same combination; otherwise
 * `RequestSeriesCache.get` finds it again per request.
 */
export class RequestSeries {
  /** Counter children by `status * 32 + grpcIndex + 1`; bounded by status × grpc values. */
  private readonly byStatus = new Map<number, LeanCounterChild>();

  constructor(
    private readonly cache: RequestSeriesCache,
    /** direction, src_service, dst_service, route, tls; all `overflow` for the overflow series. */
    readonly labels: readonly [string, string, string, string, string],
    private readonly duration: LeanHistogramChild,
  ) {}

  /**
   * Record one finished request: `status` the HTTP status, `grpcIndex` from
   * {@link grpcStatusIndex} (-1 when not gRPC), `seconds` from arrival to body end.
   */
  record(status: number, grpcIndex: number, seconds: number): void {
    this.duration.observe(seconds);
    const key = status * 32 + grpcIndex + 1;
    let child = this.byStatus.get(key);
    if (child === undefined) {
      child = this.cache.bindStatus(this, status, grpcIndex);
      // Overflow children are not cached here, so this map only holds real label sets.
      if (child !== this.cache.overflowCounter()) this.byStatus.set(key, child);
    }
    child.inc();
  }
}

type ByRoute = Map<string, RequestSeries>;
type BySrc = Map<string, ByRoute>;
type ByDst = Map<string, BySrc>;

/** Nested cache of {@link RequestSeries}, bounded by two {@link SeriesBudget}s. */
export class RequestSeriesCache {
  /** Indexed by `(direction === 'inbound' ? 0 : 2) + (tls ? 1 : 0)`. */
  private readonly roots: ByDst[] = [new Map(), new Map(), new Map(), new Map()];
  private overflowSeries: RequestSeries | undefined;
  private overflowCounterChild: LeanCounterChild | undefined;

  constructor(
    /** Labels in {@link RequestLabel} order. */
    private readonly requests: LeanCounter,
    /** Labels in {@link DurationLabel} order. */
    private readonly durations: LeanHistogram,
    private readonly requestBudget: SeriesBudget,
    private readonly durationBudget: SeriesBudget,
  ) {}

  /** The series for one combination; the shared overflow series once the cap is reached. */
  get(direction: Direction, src: string, dst: string, route: string, tls: boolean): RequestSeries {
    const root = this.roots[(direction === 'inbound' ? 0 : 2) + (tls ? 1 : 0)];
    const series = root.get(dst)?.get(src)?.get(route);
    return series ?? this.create(root, direction, src, dst, route, tls);
  }

  private create(
    root: ByDst,
    direction: Direction,
    src: string,
    dst: string,
    route: string,
    tls: boolean,
  ): RequestSeries {
    if (!this.durationBudget.take()) return this.overflow();
    const labels = [direction, src, dst, route, tls ? 'true' : 'false'] as const;
    const series = new RequestSeries(this, labels, this.durations.labels(...labels));
    let bySrc = root.get(dst);
    if (bySrc === undefined) root.set(dst, (bySrc = new Map()));
    let byRoute = bySrc.get(src);
    if (byRoute === undefined) bySrc.set(src, (byRoute = new Map()));
    byRoute.set(route, series);
    return series;
  }

  /** @internal Bind the counter child for one status of a series (or the overflow child). */
  bindStatus(series: RequestSeries, status: number, grpcIndex: number): LeanCounterChild {
    if (series === this.overflowSeries) {
      this.requestBudget.countOverflow();
      return this.overflowCounter();
    }
    if (!this.requestBudget.take()) return this.overflowCounter();
    const [direction, src, dst, route, tls] = series.labels;
    return this.requests.labels(direction, src, dst, route, String(status), grpcStatusLabel(grpcIndex), tls);
  }

  /** @internal The `requests_total` child every over-the-cap label set counts into. */
  overflowCounter(): LeanCounterChild {
    if (this.overflowCounterChild === undefined) {
      this.overflowCounterChild = this.requests.labels(
        OVERFLOW,
        OVERFLOW,
        OVERFLOW,
        OVERFLOW,
        OVERFLOW,
        OVERFLOW,
        OVERFLOW,
      );
    }
    return this.overflowCounterChild;
  }

  private overflow(): RequestSeries {
    if (this.overflowSeries === undefined) {
      const labels = [OVERFLOW, OVERFLOW, OVERFLOW, OVERFLOW, OVERFLOW] as const;
      this.overflowSeries = new RequestSeries(this, labels, this.durations.labels(...labels));
    }
    return this.overflowSeries;
  }
}
