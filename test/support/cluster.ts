/**
 * Test support for multi-endpoint destinations: several app servers, each behind its own
 * server-side sidecar, and one client sidecar whose services list all their inbound ports.
 */
import type http from 'node:http';
import { startHttpServer, startProxy, type RunningProxy } from './mesh.ts';

export interface Instance {
  /** The app's own port. */
  appPort: number;
  app: http.Server;
  sidecar: RunningProxy;
  /** Close the app and its sidecar, destroying open connections (a crashed pod). */
  kill(): Promise<void>;
}

/** One app behind its own server-side sidecar. */
export async function startInstance(service: string, handler: http.RequestListener): Promise<Instance> {
  const app = await startHttpServer(handler);
  const sidecar = await startProxy({
    proxy: { service, app: { host: '127.0.0.1', port: app.port, protocol: 'http' } },
  });
  let killed: Promise<void> | undefined;
  return {
    appPort: app.port,
    app: app.server,
    sidecar,
    kill: () => (killed ??= Promise.all([sidecar.close(), app.close()]).then(() => undefined)),
  };
}

/**
 * A server-side sidecar in front of an app that is already listening on `appPort` (any
 * protocol); `kill` closes the sidecar and then calls `closeApp`.
 */
export async function startSidecarFor(
  service: string,
  appPort: number,
  protocol: 'http' | 'http2' | 'grpc',
  closeApp: () => Promise<void>,
): Promise<Omit<Instance, 'app'>> {
  const sidecar = await startProxy({
    proxy: { service, app: { host: '127.0.0.1', port: appPort, protocol } },
  });
  let killed: Promise<void> | undefined;
  return {
    appPort,
    sidecar,
    kill: () => (killed ??= sidecar.close().then(closeApp)),
  };
}

/** A `services[]` entry of a client sidecar config naming the given instances as endpoints. */
export function serviceEntry(
  name: string,
  instances: readonly Pick<Instance, 'sidecar'>[],
  protocol: 'http' | 'http2' | 'grpc' = 'http',
): Record<string, unknown> {
  return {
    name,
    ports: [{ port: 80, protocol }],
    endpoints: instances.map((i) => ({ address: '127.0.0.1', port: i.sidecar.inboundPort })),
  };
}

/** A client sidecar (outbound only) for `services` with `resources` (routes, policies). */
export function startClient(
  services: Record<string, unknown>[],
  resources: unknown[] = [],
  proxy: Record<string, unknown> = {},
): Promise<RunningProxy> {
  return startProxy({ proxy: { service: 'client', ...proxy }, services, resources });
}

/** Read one sample of a metric from a proxy's /metrics (sum over series matching all `labels`). */
export async function metricValue(
  adminUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** A TrafficPolicy resource targeting a Service. */
export function policy(
  name: string,
  service: string,
  spec: Record<string, unknown>,
): Record<string, unknown> {
  return {
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name },
    spec: { targetRef: { kind: 'Service', name: service }, ...spec },
  };
}
