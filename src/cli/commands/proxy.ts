/** `hexmesh proxy`: run the sidecar proxy. */
import { Command } from 'commander';
import { loadProxyConfig } from '../../config/load.ts';
import { Proxy } from '../../proxy/proxy.ts';

export function proxyCommand(): Command {
  return new Command('proxy')
    .description('run the sidecar proxy beside one service instance')
    .requiredOption('-c, --config <file>', 'proxy configuration (YAML or JSON), see docs/proxy.md')
    .addHelpText(
      'after',
      `
Listeners (defaults; change them in the config file):
  outbound 127.0.0.1:4140   the app sends requests here (Host: <service>)
  inbound  0.0.0.0:4143     traffic from other sidecars, forwarded to the local app
  admin    127.0.0.1:4191   /metrics /ready /live /config, POST /shutdown

Signals: SIGTERM or SIGINT drain gracefully (stop accepting, finish in-flight requests
within proxy.drainTimeout, then exit). SIGHUP reloads the config file; an invalid file
is refused and the running config keeps serving.

Example:
  hexmesh proxy --config examples/quickstart/web-proxy.yaml`,
    )
    .action(async (opts: { config: string }) => {
      const config = await loadProxyConfig(opts.config);
      const proxy = new Proxy(config, { onExit: () => process.exit(0) });
      const a = await proxy.start();
      const ups = Object.entries(a.upstreams)
        .map(([k, v]) => ` upstream ${k}=${v.address}:${v.port}`)
        .join('');
      process.stdout.write(
        `hexmesh proxy ${config.proxy.service}: outbound=${a.outbound.address}:${a.outbound.port} inbound=${a.inbound.address}:${a.inbound.port} admin=${config.proxy.admin.address}:${a.admin.port}${ups}\n`,
      );
      const drain = () => void proxy.shutdown();
      process.once('SIGTERM', drain);
      process.once('SIGINT', drain);
      process.on('SIGHUP', () => {
        loadProxyConfig(opts.config).then(
          (next) => {
            proxy.apply(next);
            process.stdout.write(`hexmesh proxy: reloaded ${opts.config} (version ${next.version})\n`);
          },
          (err: Error) =>
            process.stderr.write(
              `hexmesh proxy: reload refused, keeping the running config: ${err.message}\n`,
            ),
        );
      });
    });
}
