/**
 * `hexmesh validate FILE...`: check files offline, without a control plane — proxy configs,
 * mesh files (with the resources they include) and resource files or directories (every kind,
 * the same schemas as the API) — then analyse the resources across all of them as `istioctl
 * analyze` does (src/config/analyze.ts): duplicate matches, weights summing to 0, policies
 * selecting nothing, backends naming no service.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { ConfigError, loadProxyConfig, parseDocuments } from '../../config/load.ts';
import { analyzeResources } from '../../config/analyze.ts';
import type { Resource } from '../../config/resources.ts';
import { backendRefWarnings, validateResources } from '../../control/validate-resource.ts';
import { buildOutbound } from '../../proxy/outbound/outbound-stack.ts';
import { ProxyMetrics } from '../../telemetry/metrics.ts';
import { PLAINTEXT } from '../../proxy/transport/hop-security.ts';
import { EXIT } from '../exit-codes.ts';

/** What one file held, once valid. */
interface Checked {
  summary: string;
  resources: readonly Resource[];
  /** Services the file declares (a mesh file's entries, a proxy config's services, Service resources). */
  services: string[];
}

export function validateCommand(): Command {
  return new Command('validate')
    .description(
      'validate proxy configs, mesh files and resource files offline (every kind), then analyse the resources across them',
    )
    .argument('<file...>', 'files or directories (YAML or JSON): proxy config, mesh file, or resources')
    .option('--strict', 'exit 1 when the analysis finds anything (as well as on invalid files)')
    .addHelpText(
      'after',
      `
Examples:
  hexmesh validate examples/quickstart/frontend-proxy.yaml
  hexmesh validate examples/shop/mesh.yaml
  hexmesh validate deploy/ --strict          # every *.yaml, *.yml, *.json in it`,
    )
    .action(async (paths: string[], opts: { strict?: boolean }) => {
      const files = (await Promise.all(paths.map(expand))).flat();
      const checked: Checked[] = [];
      const errors: ConfigError[] = [];
      for (const file of files) {
        try {
          const c = await checkFile(file);
          checked.push(c);
          process.stdout.write(`${file}: valid (${c.summary})\n`);
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          errors.push(e);
        }
      }
      if (errors.length === 1 && files.length === 1) throw errors[0];
      for (const e of errors) process.stderr.write(`hexmesh: ${e.message}\n`);
      const resources = checked.flatMap((c) => c.resources);
      const declared = new Set(checked.flatMap((c) => c.services));
      // Offline, a service is known only if these files declare it; with none declared the
      // checks that need to know are skipped rather than flag every name.
      const serviceKnown = declared.size ? (ns: string, n: string) => declared.has(`${ns}/${n}`) : undefined;
      const warnings = [
        ...analyzeResources(resources, serviceKnown ? { serviceKnown } : {}),
        ...(serviceKnown ? backendRefWarnings(resources, serviceKnown) : []),
      ];
      for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
      if (errors.length) process.exitCode = EXIT.CONFIG;
      else if (warnings.length && opts.strict) process.exitCode = EXIT.RUNTIME;
    });
}

/** A directory: its *.yaml, *.yml and *.json files in name order (as apply -f). */
async function expand(path: string): Promise<string[]> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isDirectory()) return [path];
  return (await readdir(path))
    .filter((n) => /\.(ya?ml|json)$/.test(n))
    .sort()
    .map((n) => join(path, n));
}

async function checkFile(file: string): Promise<Checked> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [
      { path: '', value: undefined, message: `cannot read file: ${(e as Error).message}` },
    ]);
  }
  const docs = parseDocuments(text, file);
  const only = docs.length === 1 ? (docs[0] as Record<string, unknown>) : undefined;
  if (only && typeof only === 'object' && 'proxy' in only) return checkProxyConfig(file);
  if (only && typeof only === 'object' && !('kind' in only) && ('services' in only || 'controlPlane' in only))
    return checkMeshFile(file);
  const valid = validateResources(docs, file);
  const resources = valid.map((v) => v.parsed);
  return {
    summary: `${resources.length} resource${resources.length === 1 ? '' : 's'}`,
    resources,
    services: resources
      .filter((r) => r.kind === 'Service')
      .map((r) => `${r.metadata.namespace}/${r.metadata.name}`),
  };
}

async function checkProxyConfig(file: string): Promise<Checked> {
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
  return {
    summary: `${config.services.length} services, ${config.resources.length} resources`,
    resources: config.resources,
    services: config.services.map((s) => `${s.namespace ?? 'default'}/${s.name}`),
  };
}

async function checkMeshFile(file: string): Promise<Checked> {
  const { loadMeshFile } = await import('../../runtime/mesh-file.ts');
  const mesh = await loadMeshFile(file);
  const resources = mesh.resources.length ? validateResources(mesh.resources, file).map((v) => v.parsed) : [];
  return {
    summary: `mesh file: ${mesh.services.length} services, ${resources.length} resources`,
    resources,
    services: [
      ...mesh.services.map((s) => `${s.namespace}/${s.name}`),
      ...resources
        .filter((r) => r.kind === 'Service')
        .map((r) => `${r.metadata.namespace}/${r.metadata.name}`),
    ],
  };
}
