/**
 * `GET /v1/stats/{services,edges,routes,timeseries,errors,targets}`: the embedded metrics views
 * (docs/observability.md). Common query: `?window=1m` (default 1m, at most the history
 * kept), `?namespace=`. Answered by the leader, which is the replica that collects.
 * `services` and `edges` take `?by=version|revision|instance|deployment` to split each service
 * (each edge's destination) by the instances that served it.
 */
import { parseDuration } from '../../config/duration.ts';
import { ApiError, badRequest } from '../http/error-response.ts';
import type { ApiRequest, Router } from '../http/router.ts';
import type { MetricsCollector } from '../metrics/collector.ts';
import { errorsView } from '../metrics/errors-view.ts';
import {
  STAT_SPLITS,
  TIMESERIES_METRICS,
  edgesView,
  routesView,
  servicesView,
  timeseriesView,
  type StatSplit,
  type TimeseriesMetric,
  type ViewQuery,
} from '../metrics/views.ts';
import type { ApiContext } from './context.ts';

const DEFAULT_WINDOW_MS = 60_000;

function durationParam(req: ApiRequest, name: string, dflt: number, max: number): number {
  const raw = req.query.get(name);
  if (raw === null || raw === '') return dflt;
  const ms = parseDuration(raw);
  if (ms === undefined || ms <= 0)
    throw badRequest(`${name}: expected a duration like 1m or 10s, got ${JSON.stringify(raw)}`);
  if (ms > max) throw badRequest(`${name}: ${raw} is longer than the ${max / 1000}s of history kept`);
  return ms;
}

function required(req: ApiRequest, name: string): string {
  const v = req.query.get(name);
  if (!v) throw badRequest(`query parameter ${name} is required`);
  return v;
}

function splitParam(req: ApiRequest): StatSplit | undefined {
  const by = req.query.get('by');
  if (by === null || by === '') return undefined;
  if (!STAT_SPLITS.includes(by as StatSplit))
    throw badRequest(`by: expected one of ${STAT_SPLITS.join(', ')}, got ${JSON.stringify(by)}`);
  return by as StatSplit;
}

export function statsRoutes(router: Router, ctx: ApiContext, collector: MetricsCollector): void {
  const retention = collector.window.retentionMs;
  const query = (req: ApiRequest): ViewQuery => {
    if (!collector.collecting)
      throw new ApiError(
        'HEXMESH_ERR_NOT_FOUND',
        ctx.isLeader()
          ? 'no metrics yet: the first collection round has not finished'
          : 'no metrics on this replica: the leader replica collects them, ask it',
        { details: { leader: ctx.isLeader() } },
      );
    const namespace = req.query.get('namespace') || undefined;
    return { windowMs: durationParam(req, 'window', DEFAULT_WINDOW_MS, retention), namespace };
  };
  router.add(
    'GET',
    '/v1/stats/services',
    async (req) => {
      const service = req.query.get('service') || undefined;
      return { json: servicesView(collector, { ...query(req), service, by: splitParam(req) }) };
    },
    'stats:read',
  );
  router.add(
    'GET',
    '/v1/stats/edges',
    async (req) => ({ json: edgesView(collector, { ...query(req), by: splitParam(req) }) }),
    'stats:read',
  );
  router.add(
    'GET',
    '/v1/stats/routes',
    async (req) => {
      const q = query(req);
      return { json: routesView(collector, { ...q, service: required(req, 'service') }) };
    },
    'stats:read',
  );
  router.add(
    'GET',
    '/v1/stats/timeseries',
    async (req) => {
      const q = query(req);
      const service = required(req, 'service');
      const metric = (req.query.get('metric') || 'rps') as TimeseriesMetric;
      if (!TIMESERIES_METRICS.includes(metric))
        throw badRequest(
          `metric: expected one of ${TIMESERIES_METRICS.join(', ')}, got ${JSON.stringify(metric)}`,
        );
      const windowMs = durationParam(req, 'window', 3_600_000, retention);
      const stepMs = durationParam(req, 'step', Math.max(collector.window.resolutionMs, 10_000), windowMs);
      if (windowMs / stepMs > 11_000) throw badRequest('step: too many points (window / step > 11000)');
      return { json: timeseriesView(collector, { ...q, windowMs, service, metric, stepMs }) };
    },
    'stats:read',
  );
  router.add(
    'GET',
    '/v1/stats/errors',
    async (req) => ({ json: errorsView(collector, { ...query(req), service: required(req, 'service') }) }),
    'stats:read',
  );
  router.add(
    'GET',
    '/v1/stats/targets',
    async () => ({
      json: {
        collecting: collector.collecting,
        intervalMs: collector.intervalMs,
        series: collector.window.seriesCount,
        maxSeries: collector.window.maxSeries,
        droppedSamples: collector.window.droppedSamples,
        errorSeries: collector.errors.seriesCount,
        errorDroppedSamples: collector.errors.droppedSamples,
        targets: collector.targets(),
      },
    }),
    'stats:read',
  );
}
