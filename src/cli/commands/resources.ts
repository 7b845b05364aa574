/**
 * `hexmesh apply | get | delete | describe`: the desired state (Service, HTTPRoute,
 * GRPCRoute, TrafficPolicy) on the control plane, kubectl-shaped.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { ConfigError, parseDocuments } from '../../config/load.ts';
import { KNOWN_KINDS, validateResources } from '../../control/validate-resource.ts';
import { ControlApiError, type ControlClient, type StoredResource } from '../client/control-client.ts';
import {
  CliFailure,
  UsageError,
  age,
  formatData,
  formatTable,
  outputOption,
  problemLine,
  runWithClient,
  withControl,
  type ControlOpts,
  type OutputFormat,
  type ListFormat,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';
import { ApplyInterruptedError, applyInBatches, type DocRef } from './apply-batches.ts';

/** `svc`, `services`, `httproute`, `HTTPRoutes`, `tp` → the canonical kind. */
export function canonicalKind(input: string): string {
  const k = input.toLowerCase();
  const aliases: Record<string, string> = {
    svc: 'service',
    route: 'httproute',
    routes: 'httproute',
    tp: 'trafficpolicy',
  };
  const want = aliases[k] ?? k;
  for (const kind of KNOWN_KINDS.keys()) {
    const l = kind.toLowerCase();
    if (want === l || want === `${l}s` || (l.endsWith('y') && want === `${l.slice(0, -1)}ies`)) return kind;
  }
  throw new UsageError(
    `unknown kind ${JSON.stringify(input)} (known kinds: ${[...KNOWN_KINDS.keys()].join(', ')})`,
  );
}

/** Where one document came from, to report problems by file. */
interface Origin {
  file: string;
  doc: number;
  docsInFile: number;
}

/** Files of `-f`: a file, `-` (stdin), or a directory's *.yaml/*.yml/*.json in name order. */
async function readSources(path: string): Promise<{ file: string; text: string }[]> {
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return [{ file: '<stdin>', text: Buffer.concat(chunks).toString('utf8') }];
  }
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new CliFailure(
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      EXIT.USAGE,
    );
  }
  if (!st.isDirectory()) return [{ file: path, text: await readFile(path, 'utf8') }];
  const names = (await readdir(path)).filter((n) => /\.(ya?ml|json)$/i.test(n)).sort();
  if (names.length === 0) throw new CliFailure(`${path}: no *.yaml, *.yml or *.json files`, EXIT.USAGE);
  return Promise.all(
    names.map(async (n) => ({ file: join(path, n), text: await readFile(join(path, n), 'utf8') })),
  );
}

/** Parse every file; a syntax error in any is reported for all before anything is sent. */
export async function loadDocuments(path: string): Promise<{ docs: unknown[]; origins: Origin[] }> {
  const docs: unknown[] = [];
  const origins: Origin[] = [];
  const errors: string[] = [];
  for (const { file, text } of await readSources(path)) {
    try {
      const parsed = parseDocuments(text, file);
      parsed.forEach((d, i) => {
        // A JSON array (or a YAML sequence) of resources is a list of documents too.
        const list = Array.isArray(d) ? d : [d];
        for (const item of list) {
          docs.push(item);
          origins.push({ file, doc: i + 1, docsInFile: 0 });
        }
      });
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length) throw new CliFailure(errors.join('\n'), EXIT.CONFIG);
  for (const o of origins) o.docsInFile = origins.filter((x) => x.file === o.file).length;
  if (docs.length === 0) throw new CliFailure(`${path}: no resources`, EXIT.CONFIG);
  return { docs, origins };
}

/** Problems of a refused apply, each with its file (and document) instead of `[i]`. */
export function problemsByFile(err: ControlApiError, origins: readonly Origin[]): string {
  const lines = err.problems.map((p) => {
    const m = origins.length > 1 ? /^\[(\d+)\]\.?(.*)$/.exec(p.path) : null;
    const o = origins[m ? Number(m[1]) : 0];
    const path = m ? m[2] : p.path;
    if (!o) return problemLine(p);
    const where = o.docsInFile > 1 ? `${o.file} (document ${o.doc})` : o.file;
    return problemLine({ ...p, path: path ? `${where}: ${path}` : where });
  });
  const n = err.problems.length;
  return [`invalid resources, nothing applied (${n} problem${n === 1 ? '' : 's'}):`, ...lines].join('\n');
}

const fileHelp = (verb: string, extra: string) => `
-f takes a file, a directory (every *.yaml, *.yml and *.json in it, in name order) or - for
stdin; YAML files may hold several documents (---).${extra}

Examples:
  hexmesh ${verb} -f routes.yaml
  hexmesh ${verb} -f deploy/ --control http://10.0.0.1:7070`;

export function applyCommand(): Command {
  return withControl(
    new Command('apply')
      .description(
        'create or update resources from YAML/JSON files (all validated first; nothing written if any is invalid)',
      )
      .requiredOption('-f, --filename <file|dir>', 'file, directory or - (stdin)')
      .addOption(
        new Option(
          '--dry-run <mode>',
          'server: the control plane validates, checks resourceVersions and reports what would change, writing nothing; client: validate offline only',
        ).choices(['server', 'client']),
      )
      .addOption(outputOption(['table', 'json'], 'table')),
  )
    .addHelpText(
      'after',
      fileHelp(
        'apply',
        '\nPrints kind/name created|configured|unchanged; exit 3 with every problem if invalid.',
      ),
    )
    .action(
      async (
        opts: ControlOpts & { filename: string; output: OutputFormat; dryRun?: 'server' | 'client' },
      ) => {
        await runWithClient('apply', opts, async (client) => {
          const { docs, origins } = await loadDocuments(opts.filename);
          if (opts.dryRun === 'client') return dryRunClient(docs, origins, opts.output);
          let answer;
          try {
            answer =
              opts.dryRun === 'server'
                ? (
                    await client.request<Awaited<ReturnType<typeof applyInBatches>>>('POST', '/v1/apply', {
                      query: { dryRun: true },
                      body: docs,
                    })
                  ).body
                : await applyInBatches(client, docs);
          } catch (err) {
            if (
              err instanceof ControlApiError &&
              err.code === 'HEXMESH_ERR_CONFIG_INVALID' &&
              err.problems.length
            )
              throw new CliFailure(problemsByFile(err, origins), EXIT.CONFIG);
            if (err instanceof ApplyInterruptedError) reportInterruption(err, docs.length, opts.output);
            throw err;
          }
          const dry = opts.dryRun ? ' (server dry run)' : '';
          if (opts.output === 'json')
            process.stdout.write(formatData(opts.dryRun ? { ...answer, dryRun: 'server' } : answer, 'json'));
          else for (const r of answer.results) process.stdout.write(`${resultLine(r)} ${r.action}${dry}\n`);
          for (const w of answer.warnings) process.stderr.write(`warning: ${w}\n`);
        });
      },
    );
}

/** `--dry-run=client`: the API's schemas, offline; nothing is sent. */
function dryRunClient(docs: unknown[], origins: readonly Origin[], output: OutputFormat): void {
  let valid;
  try {
    valid = validateResources(docs, 'files');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new CliFailure(
      problemsByFile(
        new ControlApiError(400, 'HEXMESH_ERR_CONFIG_INVALID', err.message, { problems: [...err.problems] }),
        origins,
      ),
      EXIT.CONFIG,
    );
  }
  const refs = valid.map((v) => ({
    kind: v.doc.kind,
    namespace: v.doc.metadata.namespace,
    name: v.doc.metadata.name,
  }));
  if (output === 'json')
    process.stdout.write(
      formatData({ results: refs.map((r) => ({ ...r, action: 'valid' })), dryRun: 'client' }, 'json'),
    );
  else for (const r of refs) process.stdout.write(`${resultLine(r)} valid (client dry run)\n`);
}

function resultLine(r: DocRef): string {
  return `${r.kind}/${r.name}${r.namespace === 'default' ? '' : ` (namespace ${r.namespace})`}`;
}

/**
 * An interrupted apply: what is in force on stdout (as a normal apply prints it), every
 * document that is not (or could not be checked) on stderr; exit 1.
 */
function reportInterruption(err: ApplyInterruptedError, total: number, output: OutputFormat): never {
  const i = err.interruption;
  if (output === 'json') process.stdout.write(formatData({ interrupted: i, warnings: err.warnings }, 'json'));
  else for (const r of i.applied) process.stdout.write(`${resultLine(r)} applied\n`);
  for (const w of err.warnings) process.stderr.write(`warning: ${w}\n`);
  const lines = [
    `apply interrupted: ${i.error}`,
    `${i.applied.length} of ${total} documents applied${output === 'json' ? '' : ' (listed on stdout)'}, ${i.notApplied.length} not applied${i.unknown.length ? `, ${i.unknown.length} unknown (the control plane did not answer to check them)` : ''}`,
  ];
  if (i.notApplied.length) lines.push('not applied:', ...i.notApplied.map((r) => `  ${resultLine(r)}`));
  if (i.unknown.length) lines.push('unknown:', ...i.unknown.map((r) => `  ${resultLine(r)}`));
  lines.push('apply is idempotent: run the same command again to finish');
  throw new CliFailure(lines.join('\n'), EXIT.RUNTIME);
}

/** The kind-specific column of `get`: its title and value. */
function extraColumn(kind: string): [string, (r: StoredResource) => string] {
  const spec = (r: StoredResource) => r.spec as Record<string, any>;
  switch (kind) {
    case 'Service':
      return [
        'PORTS',
        (r) => (spec(r).ports ?? []).map((p: any) => `${p.port}/${p.protocol ?? 'http'}`).join(','),
      ];
    case 'HTTPRoute':
    case 'GRPCRoute':
      return [
        'PARENTS',
        (r) =>
          (spec(r).parentRefs ?? [])
            .map((p: any) => `${p.kind ?? 'Service'}/${p.name}${p.port ? `:${p.port}` : ''}`)
            .join(','),
      ];
    case 'TrafficPolicy':
      return [
        'TARGET',
        (r) => (spec(r).targetRef ? `${spec(r).targetRef.kind ?? 'Service'}/${spec(r).targetRef.name}` : ''),
      ];
    default:
      return ['SPEC', () => ''];
  }
}

export function getCommand(): Command {
  return withControl(
    new Command('get')
      .description('list resources of a kind, or show one')
      .argument('<kind>', 'Service, HTTPRoute, GRPCRoute, TrafficPolicy (case-insensitive, plural ok)')
      .argument('[name]', 'one resource (namespace from -n, default "default")')
      .option('-n, --namespace <ns>', 'only this namespace (lists: all namespaces when absent)')
      .addOption(outputOption(['table', 'wide', 'json', 'yaml'], 'table')),
  )
    .addHelpText(
      'after',
      `
Examples:
  hexmesh get httproutes
  hexmesh get service reviews -o yaml
  hexmesh get routes -n prod -o json`,
    )
    .action(
      async (
        kindArg: string,
        name: string | undefined,
        opts: ControlOpts & { namespace?: string; output: ListFormat },
      ) => {
        await runWithClient('get', opts, async (client) => {
          const kind = canonicalKind(kindArg);
          const items = name
            ? [(await client.getResource(kind, opts.namespace ?? 'default', name)).body]
            : (await client.listResources(kind, opts.namespace)).body;
          if (opts.output === 'json' || opts.output === 'yaml') {
            process.stdout.write(formatData(name ? items[0] : items, opts.output));
            return;
          }
          const wide = opts.output === 'wide';
          if (items.length === 0) {
            process.stderr.write(
              `No ${kind} resources${opts.namespace ? ` in namespace ${opts.namespace}` : ''}.\n`,
            );
            return;
          }
          const [title, value] = extraColumn(kind);
          process.stdout.write(
            formatTable(
              ['NAME', 'NAMESPACE', title, 'AGE', ...(wide ? ['RESOURCE VERSION', 'API VERSION'] : [])],
              items.map((r) => [
                r.metadata.name,
                r.metadata.namespace,
                value(r),
                age(r.metadata.creationTimestamp),
                ...(wide ? [r.metadata.resourceVersion ?? '-', r.apiVersion] : []),
              ]),
            ),
          );
        });
      },
    );
}

export function deleteCommand(): Command {
  return withControl(
    new Command('delete')
      .description('delete a resource by kind and name, or every resource in files')
      .argument('[kind]', 'resource kind')
      .argument('[name]', 'resource name')
      .option('-n, --namespace <ns>', 'namespace of <name>', 'default')
      .option('-f, --filename <file|dir>', 'delete the resources these files describe')
      .option('--resource-version <n>', 'delete only at this resourceVersion (else exit 5)'),
  )
    .addHelpText(
      'after',
      `
Examples:
  hexmesh delete httproute reviews-split
  hexmesh delete -f routes.yaml`,
    )
    .action(
      async (
        kindArg: string | undefined,
        name: string | undefined,
        opts: ControlOpts & { namespace: string; filename?: string; resourceVersion?: string },
      ) => {
        await runWithClient('delete', opts, async (client) => {
          let targets: { kind: string; namespace: string; name: string }[];
          if (opts.filename) {
            if (kindArg) throw new UsageError('give either KIND NAME or -f FILE, not both');
            const { docs } = await loadDocuments(opts.filename);
            targets = docs.map((d, i) => {
              const r = d as Partial<StoredResource>;
              if (!r || typeof r.kind !== 'string' || typeof r.metadata?.name !== 'string')
                throw new CliFailure(
                  `${opts.filename}: document ${i + 1} has no kind or metadata.name`,
                  EXIT.CONFIG,
                );
              return { kind: r.kind, namespace: r.metadata.namespace ?? 'default', name: r.metadata.name };
            });
          } else {
            if (!kindArg || !name) throw new UsageError('expected KIND NAME or -f FILE');
            targets = [{ kind: canonicalKind(kindArg), namespace: opts.namespace, name }];
          }
          let missing = 0;
          for (const t of targets) {
            try {
              await client.deleteResource(t.kind, t.namespace, t.name, opts.resourceVersion);
              process.stdout.write(
                `${t.kind}/${t.name}${t.namespace === 'default' ? '' : ` (namespace ${t.namespace})`} deleted\n`,
              );
            } catch (err) {
              // With -f, report each missing one and go on (as kubectl); exit 4 at the end.
              if (!(opts.filename && err instanceof ControlApiError && err.status === 404)) throw err;
              process.stderr.write(`hexmesh delete: ${err.message}\n`);
              missing++;
            }
          }
          if (missing) process.exitCode = EXIT.NOT_FOUND;
        });
      },
    );
}

export function describeCommand(): Command {
  return withControl(
    new Command('describe')
      .description('show a resource and what relates to it (a Service: instances, health, routes, policies)')
      .argument('<kind>', 'resource kind')
      .argument('<name>', 'resource name')
      .option('-n, --namespace <ns>', 'namespace', 'default')
      .addOption(outputOption(['table', 'json', 'yaml'], 'table')),
  )
    .addHelpText('after', '\nExample:\n  hexmesh describe service reviews')
    .action(
      async (
        kindArg: string,
        name: string,
        opts: ControlOpts & { namespace: string; output: OutputFormat },
      ) => {
        await runWithClient('describe', opts, async (client) => {
          const kind = canonicalKind(kindArg);
          const d = await describeResource(client, kind, opts.namespace, name);
          if (opts.output !== 'table') process.stdout.write(formatData(d, opts.output));
          else process.stdout.write(renderDescription(d, name, opts.namespace));
        });
      },
    );
}

interface Description {
  /**
   * Absent for a service only in the catalog: `hexmesh services` lists every service with
   * registered instances, a Service resource is optional (it adds ports and a selector), so
   * `describe service NAME` shows whichever exists — one name, one meaning.
   */
  resource?: StoredResource;
  /** For a Service: `resource+catalog`, `resource` (no instances yet) or `catalog` (no resource). */
  source?: 'resource+catalog' | 'resource' | 'catalog';
  instances?: {
    id: string;
    address: string;
    port: number;
    meshPort?: number;
    version?: string;
    status: string;
    output?: string;
  }[];
  routes?: string[];
  policies?: string[];
  /** For routes and policies: the Services they attach to, and whether each exists. */
  attachedTo?: { service: string; exists: boolean }[];
}

async function describeResource(
  client: ControlClient,
  kind: string,
  namespace: string,
  name: string,
): Promise<Description> {
  const resource = await client.getResource(kind, namespace, name).then(
    (r) => r.body,
    (err: unknown) => {
      // A catalog service with no Service resource is still a service (see Description).
      if (kind === 'Service' && err instanceof ControlApiError && err.status === 404) return undefined;
      throw err;
    },
  );
  const spec = (resource?.spec ?? {}) as Record<string, any>;
  if (kind === 'Service') {
    const instanceOf: string = spec.instancesOf ?? name;
    const [inst, all] = await Promise.all([client.instances(namespace, instanceOf), client.listResources()]);
    const selector: Record<string, string> = spec.selector ?? {};
    const instances = inst.body
      .filter((i) => Object.entries(selector).every(([k, v]) => i.labels[k] === v))
      .map((i) => ({
        id: i.id,
        address: i.address,
        port: i.port,
        meshPort: i.meshPort,
        version: i.labels.version,
        status: i.status,
        output: i.output,
      }));
    const routes: string[] = [];
    const routeNames = new Set<string>();
    for (const r of all.body) {
      if (r.kind !== 'HTTPRoute' && r.kind !== 'GRPCRoute') continue;
      const parents = ((r.spec as any).parentRefs ?? []) as { name: string; namespace?: string }[];
      if (parents.some((p) => p.name === name && (p.namespace ?? r.metadata.namespace) === namespace)) {
        routes.push(
          `${r.kind}/${r.metadata.name}${r.metadata.namespace === namespace ? '' : ` (namespace ${r.metadata.namespace})`}`,
        );
        routeNames.add(`${r.kind}/${r.metadata.name}`);
      }
    }
    const policies = all.body
      .filter((r) => r.kind === 'TrafficPolicy' && r.metadata.namespace === namespace)
      .filter((r) => {
        const t = (r.spec as any).targetRef ?? {};
        return (t.kind ?? 'Service') === 'Service' ? t.name === name : routeNames.has(`${t.kind}/${t.name}`);
      })
      .map((r) => `TrafficPolicy/${r.metadata.name}`);
    if (!resource && inst.body.length === 0)
      throw new CliFailure(
        `service "${name}" not found in namespace ${namespace}: no Service resource and no instance in the catalog (hexmesh services lists the catalog)`,
        EXIT.NOT_FOUND,
      );
    const source = !resource ? 'catalog' : inst.body.length ? 'resource+catalog' : 'resource';
    return { ...(resource ? { resource } : {}), source, instances, routes, policies };
  }
  if (!resource) throw new Error('unreachable: only a Service may lack its resource');
  const refs: { name: string; namespace?: string }[] =
    kind === 'TrafficPolicy'
      ? (spec.targetRef?.kind ?? 'Service') === 'Service'
        ? [spec.targetRef]
        : []
      : (spec.parentRefs ?? []);
  const attachedTo = await Promise.all(
    refs.map(async (p) => {
      const ns = p.namespace ?? namespace;
      try {
        await client.getResource('Service', ns, p.name);
        return { service: `${ns}/${p.name}`, exists: true };
      } catch (err) {
        if (err instanceof ControlApiError && err.status === 404)
          return { service: `${ns}/${p.name}`, exists: false };
        throw err;
      }
    }),
  );
  return { resource, attachedTo };
}

function renderDescription(d: Description, name: string, namespace: string): string {
  let out: string;
  if (d.resource) {
    const m = d.resource.metadata;
    out = `Name:             ${m.name}\nNamespace:        ${m.namespace}\nKind:             ${d.resource.kind}\n`;
    out += `Created:          ${m.creationTimestamp ?? '<unknown>'} (${age(m.creationTimestamp)} ago)\nResourceVersion:  ${m.resourceVersion ?? ''}\n`;
    out += `Spec:\n${formatData(d.resource.spec, 'yaml').replace(/^(?=.)/gm, '  ')}`;
  } else {
    out = `Name:             ${name}\nNamespace:        ${namespace}\nKind:             Service\n`;
    out +=
      'Resource:         <none> (a catalog service: its instances registered themselves; a Service resource would add ports and a selector)\n';
  }
  if (d.instances) {
    out += `Instances (${d.instances.length}):\n`;
    out += d.instances.length
      ? formatTable(
          ['ID', 'ADDRESS', 'MESH PORT', 'VERSION', 'STATUS', 'OUTPUT'],
          d.instances.map((i) => [
            i.id,
            `${i.address}:${i.port}`,
            i.meshPort ? String(i.meshPort) : '-',
            i.version ?? '-',
            i.status,
            i.output ?? '',
          ]),
        ).replace(/^(?=.)/gm, '  ')
      : '  <none>\n';
    out += `Routes:           ${d.routes?.join(', ') || '<none>'}\nPolicies:         ${d.policies?.join(', ') || '<none>'}\n`;
  }
  if (d.attachedTo)
    out += `Attached to:      ${d.attachedTo.map((a) => `Service ${a.service}${a.exists ? '' : ' (not found)'}`).join(', ') || '<none>'}\n`;
  return out;
}
