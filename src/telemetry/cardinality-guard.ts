/**
 * Bounded label cardinality. Unbounded label values (a path in a label, a client
 * that makes up service names) are what blew up Prometheus for Istio users; every
 * labelled hexmesh metric therefore holds at most `maxSeries` label sets. Past the
 * cap, a new label set is recorded under one series whose every label value is
 * `overflow`, and `hexmesh_metric_overflow_total{metric}` counts how often that
 * happened, so the loss is visible instead of silent.
 */
import type { Counter } from 'prom-client';

/** The label value every label takes once a metric is over its cap. */
export const OVERFLOW = 'overflow';

/** Counts the label sets one metric holds and says whether another one fits. */
export class SeriesBudget {
  private used = 0;

  constructor(
    /** Metric name, the `metric` label of the overflow counter. */
    readonly metric: string,
    readonly maxSeries: number,
    private readonly overflows: Counter<'metric'>,
  ) {}

  /** Take one series from the budget; false (and one overflow counted) when it is spent. */
  take(): boolean {
    if (this.used < this.maxSeries) {
      this.used++;
      return true;
    }
    this.countOverflow();
    return false;
  }

  /** Count one observation that went to the overflow series. */
  countOverflow(): void {
    this.overflows.inc({ metric: this.metric });
  }

  /** Give one series back (its label set was removed from the metric). */
  release(): void {
    if (this.used > 0) this.used--;
  }

  get size(): number {
    return this.used;
  }
}

/**
 * Label-bound children of one metric, cached by a key the caller builds from the
 * label values, within a {@link SeriesBudget}. For metrics touched per connection,
 * per retry or per config change; the per-request series have their own nested cache
 * (see `request-series.ts`) that builds no key at all.
 */
export class BoundedFamily<C> {
  private readonly children = new Map<string, C>();
  private overflowChild: C | undefined;
  readonly budget: SeriesBudget;

  constructor(
    metric: string,
    maxSeries: number,
    overflows: Counter<'metric'>,
    private readonly labelCount: number,
    private readonly bind: (values: string[]) => C,
  ) {
    this.budget = new SeriesBudget(metric, maxSeries, overflows);
  }

  /**
   * The child for these label values. `key` must identify `values` uniquely (join
   * them with a character that cannot occur in a value, e.g. `\u0000`).
   * Overflowing label sets are not cached, so the map stays bounded too.
   */
  get(key: string, values: string[]): C {
    const hit = this.children.get(key);
    if (hit !== undefined) return hit;
    if (!this.budget.take()) return this.overflow();
    const child = this.bind(values);
    this.children.set(key, child);
    return child;
  }

  /** The shared child every over-the-cap label set records into. */
  overflow(): C {
    if (this.overflowChild === undefined) {
      this.overflowChild = this.bind(new Array<string>(this.labelCount).fill(OVERFLOW));
    }
    return this.overflowChild;
  }
}
