/** `hexmesh routes SERVICE`: per route figures of the traffic to a service. */
import { Command } from 'commander';
import { PrometheusViews } from '../../control/metrics/prometheus-views.ts';
import type { ControlClient } from '../client/control-client.ts';
import { formatTable, runWithClient } from '../client/command-support.ts';
import type { RoutesView } from '../../control/metrics/views.ts';
import {
  fmtLatency,
  fmtPercent,
  fmtRps,
  showView,
  viewQuery,
  withViewOptions,
  requireRows,
  type ViewOptions,
} from './stat.ts';

export async function loadRoutes(
  client: ControlClient,
  opts: ViewOptions,
  service: string,
): Promise<RoutesView> {
  const q = { windowMs: opts.window, namespace: opts.namespace, service };
  if (opts.prometheus) return new PrometheusViews(opts.prometheus).routes(q);
  return (
    await client.request<RoutesView>('GET', '/v1/stats/routes', { query: viewQuery(opts, { service }) })
  ).body;
}

/** The routes view as a table; `wide` adds the destination service and the request count. */
export function routesTable(view: RoutesView, wide = false): string {
  return formatTable(
    ['NAMESPACE', 'ROUTE', 'SUCCESS', 'RPS', 'P50', 'P95', 'P99', ...(wide ? ['SERVICE', 'REQUESTS'] : [])],
    view.routes.map((r) => [
      r.namespace,
      r.route,
      fmtPercent(r.successRate),
      fmtRps(r.rps),
      ...fmtLatency(r.latencyMs),
      ...(wide ? [r.service, String(r.requests)] : []),
    ]),
  );
}

export function routesCommand(): Command {
  return withViewOptions(
    new Command('routes')
      .description('per route success rate, rps and latency of the traffic to a service')
      .argument('<service>', 'the destination service'),
  )
    .addHelpText(
      'after',
      `
Routes are the callers' routes (HTTPRoute names, "default" for passthrough traffic),
counted by the callers' sidecars.`,
    )
    .action((service: string, opts: ViewOptions) =>
      runWithClient('routes', opts, async (client) => {
        await showView(
          `hexmesh routes ${service}`,
          opts,
          () => loadRoutes(client, opts, service),
          routesTable,
          (view) => requireRows('routes', service, view.routes.length, opts),
        );
      }),
    );
}
