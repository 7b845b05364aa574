/**
 * Quantiles from Prometheus histogram buckets, computed as PromQL's `histogram_quantile`
 * does, so the embedded views and `hexmesh stat --prometheus` give the same answers.
 */

/** One cumulative bucket: observations ≤ `le` (seconds; Infinity for +Inf). */
export interface Bucket {
  le: number;
  count: number;
}

/**
 * The q-quantile (0..1) of cumulative `buckets`, by linear interpolation inside the
 * bucket it falls in (the lowest bucket starts at 0). As Prometheus: null with no
 * observations or no +Inf bucket; a quantile in the +Inf bucket answers the highest
 * finite bound. `buckets` need not be sorted.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number | null {
  if (buckets.length < 2) return null;
  const b = [...buckets].sort((x, y) => x.le - y.le);
  if (b[b.length - 1].le !== Infinity) return null;
  // Counts of summed deltas can be slightly non-monotonic (series of several proxies
  // arriving in different scrapes): force monotony as Prometheus does.
  for (let i = 1; i < b.length; i++)
    if (b[i].count < b[i - 1].count) b[i] = { le: b[i].le, count: b[i - 1].count };
  const total = b[b.length - 1].count;
  if (!(total > 0)) return null;
  if (q <= 0) return 0;
  if (q >= 1) return b[b.length - 2].le;
  const rank = q * total;
  let i = 0;
  while (i < b.length - 1 && b[i].count < rank) i++;
  if (i === b.length - 1) return b[b.length - 2].le;
  const upper = b[i].le;
  const lower = i === 0 ? 0 : b[i - 1].le;
  const below = i === 0 ? 0 : b[i - 1].count;
  const inBucket = b[i].count - below;
  if (inBucket <= 0) return upper;
  return lower + (upper - lower) * ((rank - below) / inBucket);
}
