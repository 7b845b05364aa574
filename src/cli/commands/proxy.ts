/** `hexmesh proxy`: run the sidecar proxy. */
import { Command } from 'commander';
import type { ProxyConfig } from '../../config/proxy-config.ts';
import type { StaticIdentitySource } from '../../identity/static-identity-source.ts';
import type { Proxy } from '../../proxy/proxy.ts';
import type { ControlFlags } from '../../proxy/control-client/flags.ts';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * The config file, validated in full in a short-lived child process: zod and yaml never load
 * in the sidecar (src/config/config-worker.ts, docs/proxy.md "Memory: what the sidecar loads").
 */
async function loadProxyConfig(file: string): Promise<ProxyConfig> {
  const { loadProxyConfigInWorker } = await import('../../config/config-worker.ts');
  return loadProxyConfigInWorker(file);
}

/** With `--control`, no file: flags build the settings (docs/config-distribution.md). */
export function proxyCommand(): Command {
  return new Command('proxy')
    .description('run the sidecar proxy beside one service instance')
    .option('-c, --config <file>', 'proxy configuration (YAML or JSON), see docs/proxy.md')
    .option('--control <urls>', 'control plane URL(s), comma-separated; config comes from it')
    .option('--service <name>', "with --control: this workload's service")
    .option('--namespace <ns>', 'with --control: namespace (default "default")')
    .option('--app-port <port>', "with --control: the local app's port (registers the instance)")
    .option('--inbound <host:port>', 'with --control: inbound listener (default 0.0.0.0:4143)')
    .option('--outbound <host:port>', 'with --control: outbound listener (default 127.0.0.1:4140)')
    .option('--admin <host:port>', 'with --control: admin listener (default 127.0.0.1:4191)')
    .option('--label <key=value>', 'with --control: instance label, repeatable', collect)
    .option(
      '--check <spec>',
      'with --control: app check http[:path] | tcp | grpc | ttl[:30s], repeatable',
      collect,
    )
    .option('--id <id>', 'with --control: instance id (default <service>-<random>)')
    .option(
      '--cache-dir <dir>',
      'with --control: keep the last good config and workload certificate here (0700) and start from them when the control plane is unreachable',
    )
    .option('--advertise <host>', 'with --control: address other sidecars use to reach this one')
    .option(
      '--federated-trust-domain <td>',
      "with --control: a SPIFFE trust domain besides the mesh's whose workloads may connect in over mTLS, repeatable (docs/mtls.md)",
      collect,
    )
    .option(
      '--tracing-endpoint <url>',
      'with --control: OTLP/HTTP traces URL; turns tracing on (docs/observability.md)',
    )
    .option('--tracing-sample-rate <0..1>', 'with --control: share of new traces sampled (default 0.01)')
    .option('--tracing-service-name <name>', 'with --control: service.name of the spans (default: --service)')
    .option(
      '--join-token <token>',
      'with --control: join token for the workload certificate (or env HEXMESH_JOIN_TOKEN), see docs/identity.md',
    )
    .option(
      '--token-file <file>',
      'with --control: file holding the token for the workload certificate, re-read at each use (a projected ServiceAccount token, audience hexmesh; docs/kubernetes.md)',
    )
    .option(
      '--control-ca <file>',
      'with an https:// --control: PEM of the CA that vouches for the control plane (or env HEXMESH_CONTROL_CA; `hexmesh control --tls` writes <data-dir>/ca-bundle.pem)',
    )
    .option(
      '--capture',
      "with --control: transparent capture is on (hexmesh capture's rules): route each redirected connection by its original destination",
    )
    .option(
      '--outbound-traffic-policy <policy>',
      'with --capture: ALLOW_ANY (default) passes connections to non-mesh addresses through, REGISTRY_ONLY closes them',
    )
    .addHelpText(
      'after',
      `
Listeners (defaults; change them in the config file):
  outbound 127.0.0.1:4140   the app sends requests here (Host: <service>)
  inbound  0.0.0.0:4143     traffic from other sidecars, forwarded to the local app
  admin    127.0.0.1:4191   /metrics /ready /live /config /endpoints /tap,
                            POST /shutdown (with the header x-hexmesh-admin: 1)

Signals: SIGTERM or SIGINT drain gracefully (stop accepting, finish in-flight requests
within proxy.drainTimeout, then exit). SIGHUP reloads the config file; an invalid file
is refused and the running config keeps serving.

Example:
  hexmesh proxy --config examples/quickstart/frontend-proxy.yaml`,
    )
    .action(async (flags: ProxyFlags, cmd: Command) => {
      // V8's young generation stays at its initial size until the proxy serves (startup-heap.ts).
      const { holdYoungGeneration } = await import('../../proxy/core/startup-heap.ts');
      const release = holdYoungGeneration();
      try {
        await startProxy(flags, cmd);
      } finally {
        release();
      }
      // After a burst, the young generation V8 grew for it is given back once quiet (idle-heap.ts).
      const { returnYoungGenerationWhenIdle } = await import('../../proxy/core/idle-heap.ts');
      returnYoungGenerationWhenIdle();
    });
}

type ProxyFlags = { config?: string } & Partial<ControlFlags>;

/** Start the proxy from a config file or the control plane; resolves once it serves. */
async function startProxy(flags: ProxyFlags, cmd: Command): Promise<void> {
  // Before any upstream connection: keeps RSS flat on the first large transfer.
  const { keepWasmOnBaselineCompiler } = await import('../../proxy/core/wasm-tiering.ts');
  keepWasmOnBaselineCompiler();
  // Node 20's HTTP/2 client pays two util.deprecate wrappers per request without it.
  const { installLeanAsyncBind } = await import('../../proxy/core/lean-async-bind.ts');
  installLeanAsyncBind();
  // Dynamic imports: every CLI command shares this bundle, and a sidecar should carry only
  // what it runs (the control client's ws, the certificate parser only with proxy.tls).
  if (flags.control) {
    const { runControlledProxy } = await import('../../proxy/control-client/flags.ts');
    return runControlledProxy(flags as ControlFlags);
  }
  if (!flags.config)
    cmd.error("error: required option '-c, --config <file>' not specified (or use --control)");
  const opts = { config: flags.config! };
  // The proxy's modules load while the child process validates the file.
  const [config, { Proxy }] = await Promise.all([
    loadProxyConfig(opts.config),
    import('../../proxy/proxy.ts'),
  ]);
  // proxy.tls: mutual TLS with a certificate from files (docs/mtls.md); SIGHUP re-reads them.
  const tls = config.proxy.tls;
  let identity: StaticIdentitySource | undefined;
  if (tls) {
    const { StaticIdentitySource } = await import('../../identity/static-identity-source.ts');
    identity = await StaticIdentitySource.fromFiles({
      cert: tls.certFile,
      key: tls.keyFile,
      bundle: tls.bundleFile,
    });
  }
  const proxy = new Proxy(config, { onExit: () => process.exit(0), identity });
  if (identity) proxy.metrics.setCertExpiry(identity.current().notAfter.getTime());
  const a = await proxy.start();
  // Handlers first, then the start line: a test (or a supervisor) may signal as soon as it reads it.
  const drain = (signal: NodeJS.Signals) => {
    process.stdout.write(
      `hexmesh proxy ${config.proxy.service}: ${signal}: draining (up to ${config.proxy.drainTimeout} ms for in-flight requests)\n`,
    );
    void proxy.shutdown();
  };
  process.once('SIGTERM', drain);
  process.once('SIGINT', drain);
  process.on('SIGHUP', () => void reload(proxy, opts.config, config, identity));
  const ups = Object.entries(a.upstreams)
    .map(([k, v]) => ` upstream ${k}=${v.address}:${v.port}`)
    .join('');
  process.stdout.write(
    `hexmesh proxy ${config.proxy.service}: outbound=${a.outbound.address}:${a.outbound.port} inbound=${a.inbound.address}:${a.inbound.port} admin=${config.proxy.admin.address}:${a.admin.port}${ups}\n`,
  );
}

/**
 * SIGHUP: re-read the file and apply it. A file that fails validation, or a snapshot that
 * fails to build, is refused (counted in hexmesh_config_rejections_total) and the running
 * config keeps serving; nothing here may throw, or the process would die on a bad edit.
 */
async function reload(
  proxy: Proxy,
  file: string,
  started: ProxyConfig,
  identity: StaticIdentitySource | undefined,
): Promise<void> {
  let next: ProxyConfig;
  try {
    next = await loadProxyConfig(file);
  } catch (err) {
    proxy.metrics.recordConfigRejection();
    process.stderr.write(
      `hexmesh proxy: reload refused, keeping the running config: ${(err as Error).message}\n`,
    );
    return;
  }
  try {
    proxy.apply(next); // counts its own rejections
  } catch (err) {
    process.stderr.write(
      `hexmesh proxy: reload refused, keeping the running config: ${(err as Error).message}\n`,
    );
    return;
  }
  const tls = next.proxy.tls;
  if (identity && tls) {
    // Renewed certificate or rotated bundle on disk: new handshakes use it, open connections stay.
    try {
      const { StaticIdentitySource } = await import('../../identity/static-identity-source.ts');
      const fresh = await StaticIdentitySource.fromFiles({
        cert: tls.certFile,
        key: tls.keyFile,
        bundle: tls.bundleFile,
      });
      identity.update({ ...fresh.current(), trustBundlePem: fresh.trustBundlePem() });
      proxy.metrics.setCertExpiry(identity.current().notAfter.getTime());
    } catch (err) {
      process.stderr.write(`hexmesh proxy: keeping the current certificate: ${(err as Error).message}\n`);
    }
  }
  const fixed = (c: ProxyConfig) =>
    JSON.stringify([c.proxy.outbound, c.proxy.inbound, c.proxy.admin, c.proxy.upstreams]);
  if (fixed(next) !== fixed(started))
    process.stderr.write(
      'hexmesh proxy: listener addresses changed in the file; they apply after a restart\n',
    );
  process.stdout.write(`hexmesh proxy: reloaded ${file} (version ${next.version})\n`);
}
