/**
 * The new revision's own traffic, read from the mesh's own metrics: the inbound series
 * of the revision's sidecars (`hexmesh_requests_total` and the latency histogram,
 * `direction="inbound"`), scraped from their admin `/metrics`.
 *
 * Why not `/v1/stats/services`: the control plane's views add up every instance of a
 * service, and both revisions are instances of the same service; a canary's 5 % errors
 * would be diluted by the stable revision's traffic. The sidecars' counters are the same
 * source the views are built from, per instance, so the controller sums the revision's.
 * Parsing and quantiles are the control plane's (prom-text.ts, histogram.ts), so figures
 * agree with `hexmesh stat`.
 */
import { histogramQuantile, type Bucket } from '../control/metrics/histogram.ts';
import { parsePromText } from '../control/metrics/prom-text.ts';
import { BUCKETS, REQUESTS, isSuccess } from '../control/metrics/window-store.ts';

/** Cumulative counters of one sidecar at one scrape. */
interface Counters {
  requests: number;
  successes: number;
  buckets: Map<number, number>;
}

/** What the revision served between two reads. */
export interface Measurement {
  requests: number;
  /** Percent (0..100), null without requests. */
  successRate: number | null;
  /** Milliseconds, null without requests. */
  p99Ms: number | null;
  /**
   * Admin addresses whose counters could not be read at one end of the interval (a scrape
   * failed or timed out now, or when the baseline was taken): their traffic is missing from
   * the figures, so the interval proves nothing about them.
   */
  unreachable: string[];
}

/** Scrape one sidecar's admin `/metrics` and sum its inbound request counters. */
export async function scrapeInbound(adminAddress: string, timeoutMs = 2000): Promise<Counters> {
  const r = await fetch(`http://${adminAddress}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!r.ok) {
    await r.body?.cancel();
    throw new Error(`${adminAddress}/metrics answered ${r.status}`);
  }
  const c: Counters = { requests: 0, successes: 0, buckets: new Map() };
  parsePromText(
    await r.text(),
    (s) => {
      if (s.labels.direction !== 'inbound') return;
      if (s.name === REQUESTS) {
        c.requests += s.value;
        if (isSuccess(s.labels.status_code, s.labels.grpc_status)) c.successes += s.value;
      } else {
        const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
        c.buckets.set(le, (c.buckets.get(le) ?? 0) + s.value);
      }
    },
    (name) => name === REQUESTS || name === BUCKETS,
  );
  return c;
}

/**
 * Increases of a set of sidecars between calls of `measure()`. The first read of a
 * sidecar is its baseline (as the control plane's collector); a counter that went down
 * (the sidecar restarted) counts in full.
 */
export class RevisionMetrics {
  readonly #last = new Map<string, Counters>();

  /**
   * Take the baselines now, so the next `measure()` counts from here. A sidecar that cannot
   * be read has no baseline: the next `measure()` reports it unreachable.
   */
  async baseline(adminAddresses: readonly string[]): Promise<void> {
    await Promise.all(
      adminAddresses.map(async (a) => {
        try {
          this.#last.set(a, await scrapeInbound(a));
        } catch {
          this.#last.delete(a);
        }
      }),
    );
  }

  async measure(adminAddresses: readonly string[]): Promise<Measurement> {
    let requests = 0;
    let successes = 0;
    const buckets = new Map<number, number>();
    const unreachable: string[] = [];
    await Promise.all(
      adminAddresses.map(async (a) => {
        let now: Counters;
        try {
          now = await scrapeInbound(a);
        } catch {
          unreachable.push(a);
          return;
        }
        const prev = this.#last.get(a);
        this.#last.set(a, now);
        if (!prev) {
          unreachable.push(a);
          return;
        }
        const reset = now.requests < prev.requests;
        requests += reset ? now.requests : now.requests - prev.requests;
        successes += reset ? now.successes : now.successes - prev.successes;
        for (const [le, n] of now.buckets)
          buckets.set(le, (buckets.get(le) ?? 0) + (reset ? n : n - (prev.buckets.get(le) ?? 0)));
      }),
    );
    const b: Bucket[] = [...buckets].map(([le, count]) => ({ le, count }));
    const p99 = requests > 0 ? histogramQuantile(0.99, b) : null;
    return {
      requests,
      successRate: requests > 0 ? Math.round((successes / requests) * 1e6) / 1e4 : null,
      p99Ms: p99 === null ? null : Math.round(p99 * 1e6) / 1e3,
      unreachable,
    };
  }
}
