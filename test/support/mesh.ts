/**
 * Test support: start real proxies (in this process, real sockets on port 0) and small
 * upstream servers, and tear everything down after the test.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseProxyConfig } from '../../src/config/load.ts';
import { Proxy, type ProxyAddresses } from '../../src/proxy/proxy.ts';

export interface RunningProxy {
  proxy: Proxy;
  addr: ProxyAddresses;
  /** `http://127.0.0.1:<outbound port>` */
  outboundUrl: string;
  inboundPort: number;
  adminUrl: string;
  close(): Promise<void>;
}

/** Start a proxy from a config document (ports default to 0 = any free port, all on loopback). */
export async function startProxy(
  doc: Record<string, unknown> & { proxy: Record<string, unknown> },
): Promise<RunningProxy> {
  const any = { address: '127.0.0.1', port: 0 };
  const config = parseProxyConfig({
    ...doc,
    proxy: { outbound: any, inbound: any, admin: any, drainTimeout: '2s', ...doc.proxy },
  });
  const proxy = new Proxy(config);
  const addr = await proxy.start();
  return {
    proxy,
    addr,
    outboundUrl: `http://127.0.0.1:${addr.outbound.port}`,
    inboundPort: addr.inbound.port,
    adminUrl: `http://127.0.0.1:${addr.admin.port}`,
    close: async () => proxy.destroy(),
  };
}

export interface Pair {
  /** The server-side sidecar (inbound → app). */
  server: RunningProxy;
  /** The client-side sidecar; send requests to `client.outboundUrl` with `Host: <service>`. */
  client: RunningProxy;
  close(): Promise<void>;
}

/**
 * Two sidecars in front of an app listening on `appPort`: client outbound → server inbound → app.
 * `service` is the destination's name; extra `resources` (routes, policies) go to the client.
 */
export async function startPair(opts: {
  service: string;
  appPort: number;
  appProtocol?: 'http' | 'http2' | 'grpc' | 'tcp';
  servicePorts?: { port: number; protocol: string }[];
  resources?: unknown[];
  clientProxy?: Record<string, unknown>;
}): Promise<Pair> {
  const server = await startProxy({
    proxy: {
      service: opts.service,
      app: { host: '127.0.0.1', port: opts.appPort, protocol: opts.appProtocol ?? 'http' },
    },
  });
  const client = await startProxy({
    proxy: { service: 'client', ...opts.clientProxy },
    services: [
      {
        name: opts.service,
        ports: opts.servicePorts ?? [{ port: 80, protocol: opts.appProtocol ?? 'http' }],
        endpoints: [{ address: '127.0.0.1', port: server.inboundPort }],
      },
    ],
    resources: opts.resources ?? [],
  });
  return {
    server,
    client,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

/** An HTTP/1.1 server on a free loopback port. */
export async function startHttpServer(
  handler: http.RequestListener,
): Promise<{ server: http.Server; port: number; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
