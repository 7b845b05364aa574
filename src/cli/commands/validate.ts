/** `hexmesh validate`: check a proxy config file without starting anything. */
import { Command } from 'commander';
import { loadProxyConfig } from '../../config/load.ts';
import { buildOutbound } from '../../proxy/outbound/outbound-stack.ts';
import { ProxyMetrics } from '../../telemetry/metrics.ts';
import { PLAINTEXT } from '../../proxy/transport/hop-security.ts';

export function validateCommand(): Command {
  return new Command('validate')
    .description('validate a proxy configuration file and report every problem')
    .argument('<file>', 'proxy configuration (YAML or JSON)')
    .action(async (file: string) => {
      const config = await loadProxyConfig(file);
      // Building the stack catches what the schema cannot (e.g. a fallback naming no service).
      const stack = buildOutbound(
        config,
        undefined,
        new ProxyMetrics({ service: config.proxy.service, namespace: config.proxy.namespace }),
        {
          connectTimeout: 5000,
          idleTimeout: 1000,
          streamIdleTimeout: 1000,
          maxConnections: 1,
          security: PLAINTEXT,
        },
      );
      stack.abort();
      process.stdout.write(
        `${file}: valid (${config.services.length} services, ${config.resources.length} resources)\n`,
      );
    });
}
