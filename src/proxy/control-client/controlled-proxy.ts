/**
 * A sidecar steered by the control plane (`hexmesh proxy --control ...`): the proxy starts
 * with no services, binds its listeners, then connects, registers, and applies what the
 * control plane sends. /ready answers 200 once the first snapshot is in force.
 */
import { randomUUID } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { validate } from '../../config/validate.ts';
import { proxyConfigSchema } from '../../config/proxy-config.ts';
import type { NodeCheck } from '../../control/discovery/protocol.ts';
import { Proxy, type ProxyAddresses } from '../proxy.ts';
import { AppChecks } from './app-checks.ts';
import { ControlClient, type ControlClientOptions } from './control-client.ts';
import { ControlIdentitySource } from '../../identity/control-identity-source.ts';
import type { IdentitySource } from '../../identity/identity-source.ts';
import { CachedIdentitySource, LastGoodCache } from './last-good-cache.ts';

export interface ControlledProxyOptions {
  /** Control plane URLs (`http://host:7070`); any of them will do. */
  control: readonly string[];
  /** The `proxy:` settings (service, namespace, listeners, app...), as in a config file. */
  settings: Record<string, unknown> & { service: string };
  /** Instance id in the catalog (default `<service>-<random>`). */
  id?: string;
  /** Address other sidecars reach this one on (default: the inbound address, or this host's first IPv4). */
  advertise?: string;
  labels?: Record<string, string>;
  /** The app's health checks, run by this sidecar and reported to the catalog. */
  checks?: readonly NodeCheck[];
  onExit?: () => void;
  /**
   * Workload identity from the control plane's CA (docs/identity.md): the join token for the
   * first certificate. With an `https://` control plane, the certificate then authenticates
   * the discovery stream and renewals (mTLS); `controlCaPem` vouches for the control plane's
   * server certificate before the trust bundle is known (default: the system roots).
   */
  identity?: { joinToken?: string; tokenFile?: string; spiffeId?: string; controlCaPem?: string };
  /**
   * Keep the last good config and the workload certificate here (0700 dir, 0600 files) and
   * start from them when the control plane does not answer within `cacheAfterMs`
   * (last-good-cache.ts). Absent: nothing is written; a start needs the control plane.
   */
  cacheDir?: string;
  /** How long a start waits for the control plane before it uses the cache (default 2 s). */
  cacheAfterMs?: number;
  /** Client tuning (backoff, subscribe timeout, logging). */
  client?: Partial<Pick<ControlClientOptions, 'backoff' | 'subscribeTimeout' | 'silenceTimeout' | 'log'>>;
}

export interface ControlledProxy {
  readonly proxy: Proxy;
  readonly client: ControlClient;
  readonly addr: ProxyAddresses;
  readonly id: string;
  /** The workload certificate source (when `identity` was given); mTLS reads it. */
  readonly identity: ControlIdentitySource | undefined;
  /** Leave the mesh (deregister), drain in-flight requests, stop. */
  shutdown(): Promise<void>;
  /** Stop now: leave the mesh and close everything. */
  close(): Promise<void>;
}

export async function startControlledProxy(opts: ControlledProxyOptions): Promise<ControlledProxy> {
  const initial = validate(proxyConfigSchema, { proxy: opts.settings }, 'proxy flags');
  const p = initial.proxy;
  const id = opts.id ?? `${p.service}-${randomUUID().slice(0, 8)}`;
  // Built after the proxy's listeners are bound (the node carries their ports).
  const late: { client?: ControlClient } = {};
  let checks: AppChecks | undefined;
  const proxy = new Proxy(initial, {
    awaitConfig: true,
    onUnknownDestination: (authority) => late.client?.ensure(authority) ?? Promise.resolve(false),
    onExit: opts.onExit,
  });
  const addr = await proxy.start();
  const address = opts.advertise ?? advertiseAddress(p.inbound.address);
  const log = opts.client?.log ?? (() => {});
  const cache = opts.cacheDir ? new LastGoodCache(opts.cacheDir, { log }) : undefined;
  const identity = opts.identity
    ? new ControlIdentitySource({
        urls: opts.control,
        proxyId: id,
        ...opts.identity,
        ...(opts.client?.log ? { log: opts.client.log } : {}),
      })
    : undefined;
  const client = new ControlClient({
    ...opts.client,
    urls: opts.control,
    // The join token authenticates the discovery stream of this service (docs/api-security.md);
    // HEXMESH_TOKEN (an API token) is the alternative for proxies without one.
    ...((opts.identity?.joinToken ?? process.env.HEXMESH_TOKEN) && {
      token: opts.identity?.joinToken ?? process.env.HEXMESH_TOKEN,
    }),
    // Without an identity source an https control plane is verified by the system roots.
    tls: (url) => identity?.controlTls(url) ?? { minVersion: 'TLSv1.2' },
    settings: opts.settings,
    apply: (config) => proxy.apply(config),
    onApplied: (state) => {
      if (proxy.readyNote) log('control plane reached: the config from the control plane is in force');
      proxy.readyNote = undefined;
      void cache?.saveConfig(state);
    },
    onRefused: (version, error) => proxy.noteRejected(version, error),
    node: {
      id,
      service: p.service,
      namespace: p.namespace,
      address,
      ...(p.app ? { appPort: p.app.port, meshPort: addr.inbound.port } : {}),
      // The control plane calls it at the address this stream comes from (docs/api-security.md).
      adminPort: addr.admin.port,
      labels: opts.labels ?? {},
      checks: [...(opts.checks ?? [])],
    },
  });
  late.client = client;
  client.start();
  // The proxy serves the cached certificate until the control plane issues one.
  const served: IdentitySource | undefined =
    identity && cache ? new CachedIdentitySource(identity, cache) : identity;
  let fallback: NodeJS.Timeout | undefined;
  if (cache)
    fallback = setTimeout(() => {
      if (client.applied !== 0) return;
      const saved = cache.loadConfig();
      if (!saved) return log(`control plane unreachable and no saved config in ${cache.dir}: not ready`);
      if (client.startFrom(saved)) {
        proxy.readyNote =
          `running from cache: control plane unreachable, config version ${saved.version} saved ${new Date(saved.savedAt).toISOString()}` +
          (served && !served.current()
            ? '; no valid workload certificate: mTLS waits for the control plane'
            : '');
        log(proxy.readyNote);
      }
    }, opts.cacheAfterMs ?? 2000);
  if (identity && served) {
    const src = served;
    src.onChange(() => proxy.metrics.setCertExpiry(src.current()?.notAfter.getTime() ?? null));
    proxy.metrics.setCertExpiry(src.current()?.notAfter.getTime() ?? null);
    // mTLS: plaintext until the first certificate arrives, then TLS to meshed endpoints.
    proxy.setIdentity(src);
    identity.start();
  }
  if (p.app && opts.checks?.length) {
    const c = client;
    checks = new AppChecks(opts.checks, { host: p.app.host, port: p.app.port }, (s, o) =>
      c.reportStatus(s, o),
    );
  }
  const leave = async () => {
    clearTimeout(fallback);
    checks?.close();
    identity?.close();
    await client.close();
  };
  return {
    proxy,
    client,
    addr,
    id,
    identity,
    shutdown: async () => {
      await leave();
      await proxy.shutdown();
    },
    close: async () => {
      await leave();
      proxy.destroy();
    },
  };
}

/** The inbound address, unless it is a wildcard: then this host's first external IPv4 (or loopback). */
function advertiseAddress(inbound: string): string {
  if (inbound !== '0.0.0.0' && inbound !== '::') return inbound;
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  return '127.0.0.1';
}
