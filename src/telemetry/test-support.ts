/**
 * Helpers for the telemetry and admin tests: requests of the real dispatch
 * interface and a scrape through a real AdminServer over HTTP.
 */
import { AdminServer } from '../proxy/admin/admin-server.ts';
import type { MeshRequest, RequestContext } from '../proxy/core/dispatch.ts';
import type { ProxyMetrics } from './metrics.ts';

export function meshRequest(
  ctx: Partial<RequestContext> = {},
  req: Partial<Omit<MeshRequest, 'ctx'>> = {},
): MeshRequest {
  return {
    method: 'GET',
    authority: 'api.shop:8080',
    path: '/items/1',
    headers: {},
    body: null,
    protocol: 'http1',
    grpc: false,
    ...req,
    ctx: {
      start: 0,
      direction: 'outbound',
      srcAddress: '127.0.0.1',
      signal: new AbortController().signal,
      srcService: 'web',
      dstService: 'api',
      route: 'shop/api',
      deadline: Infinity,
      attempt: 0,
      endpoint: '127.0.0.1:9000',
      peerIdentity: '',
      tls: false,
      notes: {},
      ...ctx,
    },
  };
}

/** Scrape `/metrics` of a fresh AdminServer over a real socket, then close it. */
export async function scrape(metrics: ProxyMetrics): Promise<{ text: string; contentType: string }> {
  const admin = new AdminServer({
    address: '127.0.0.1',
    port: 0,
    metrics,
    isReady: () => true,
    configDump: () => ({}),
    onShutdown: () => {},
  });
  const { port } = await admin.listen();
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    return { text: await res.text(), contentType: res.headers.get('content-type') ?? '' };
  } finally {
    await admin.close();
  }
}

/** The sample lines of one metric family (name prefix), without HELP/TYPE. */
export function samples(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && (l[name.length] === '{' || l[name.length] === ' '));
}
