/**
 * Validation of resources written through the API: the same schemas and problem format
 * as files on disk (src/config/load.ts), every problem by path, an unknown kind named
 * with the kinds that exist. What is stored is the user's document (durations stay
 * "2s"), normalised: namespace defaulted, server-owned metadata stripped.
 */
import { ConfigError, validate, type ConfigProblem } from '../config/load.ts';
import { resourceSchema, type Resource } from '../config/resources.ts';

/** Kind → apiVersion of every kind the schema knows (later issues add kinds there). */
export const KNOWN_KINDS: ReadonlyMap<string, string> = new Map(
  resourceSchema.options.map((o) => [o.shape.kind.value as string, o.shape.apiVersion.value as string]),
);

export interface ValidResource {
  /** The parsed, frozen resource (defaults applied, durations in ms). */
  parsed: Resource;
  /** The document to store: as written, namespace defaulted, no resourceVersion/creationTimestamp. */
  doc: StoredDoc;
  /** The resourceVersion the client sent (a compare-and-set precondition), if any. */
  resourceVersion?: number;
}

export interface StoredDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; [k: string]: unknown };
  spec: unknown;
}

/** 400 for a kind the server does not know, naming the known ones. */
export function unknownKindMessage(kind: unknown): string {
  return `unknown kind ${JSON.stringify(kind)} (known kinds: ${[...KNOWN_KINDS.keys()].join(', ')})`;
}

/**
 * Validate every document; throws one ConfigError listing every problem of every
 * document (paths prefixed `[i].` when there are several), so nothing is written.
 */
export function validateResources(docs: readonly unknown[], source = 'request body'): ValidResource[] {
  const problems: ConfigProblem[] = [];
  const out: ValidResource[] = [];
  const seen = new Map<string, number>();
  if (docs.length === 0)
    throw new ConfigError(source, [{ path: '', value: undefined, message: 'no resources in the body' }]);
  docs.forEach((doc, i) => {
    const prefix = docs.length > 1 ? `[${i}]` : '';
    const at = (p: string) => (prefix && p ? `${prefix}.${p}` : prefix || p);
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      problems.push({
        path: at(''),
        value: doc,
        message: 'expected a resource object (apiVersion, kind, metadata, spec)',
      });
      return;
    }
    const kind = (doc as { kind?: unknown }).kind;
    if (typeof kind !== 'string' || !KNOWN_KINDS.has(kind)) {
      problems.push({ path: at('kind'), value: kind, message: unknownKindMessage(kind) });
      return;
    }
    const meta = (doc as { metadata?: { resourceVersion?: unknown } }).metadata;
    try {
      const parsed = validate(resourceSchema, doc, source) as Resource;
      const rv = meta?.resourceVersion;
      let resourceVersion: number | undefined;
      if (rv !== undefined) {
        resourceVersion = Number(rv);
        if (!Number.isSafeInteger(resourceVersion) || resourceVersion < 0) {
          problems.push({
            path: at('metadata.resourceVersion'),
            value: rv,
            message: 'must be a store revision (an integer)',
          });
          return;
        }
      }
      const id = `${parsed.kind}/${parsed.metadata.namespace}/${parsed.metadata.name}`;
      const dup = seen.get(id);
      if (dup !== undefined) {
        problems.push({
          path: at('metadata.name'),
          value: parsed.metadata.name,
          message: `${id} appears twice (also document ${dup})`,
        });
        return;
      }
      seen.set(id, i);
      out.push({ parsed, doc: normalise(doc as StoredDoc, parsed.metadata.namespace), resourceVersion });
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const p of e.problems) problems.push({ ...p, path: at(p.path) });
    }
  });
  if (problems.length) throw new ConfigError(source, problems);
  return out;
}

function normalise(doc: StoredDoc, namespace: string): StoredDoc {
  const copy = JSON.parse(JSON.stringify(doc)) as StoredDoc;
  copy.metadata = { ...copy.metadata, namespace };
  delete copy.metadata.resourceVersion;
  delete copy.metadata.creationTimestamp;
  return copy;
}

/** JSON with sorted keys, to tell "unchanged" from "configured" whatever the key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/**
 * Routes whose backendRefs (or mirror targets) name a service the mesh does not know (no Service
 * resource, no instance in the catalog): accepted, since it may be deployed next, but reported
 * the way `istioctl analyze` reports a missing reference — until it exists, every request the
 * rule sends there fails (503, no endpoints).
 */
export function backendRefWarnings(
  resources: readonly Resource[],
  serviceKnown: (namespace: string, name: string) => boolean,
): string[] {
  const warnings: string[] = [];
  for (const r of resources) {
    if (r.kind !== 'HTTPRoute' && r.kind !== 'GRPCRoute') continue;
    const named = new Map<string, string>();
    r.spec.rules.forEach((rule, i) => {
      const at = rule.name ? `rule ${rule.name}` : `rules[${i}]`;
      for (const b of rule.backendRefs ?? [])
        named.set(`${b.namespace ?? r.metadata.namespace}/${b.name}`, `${at} backendRef`);
      for (const f of rule.filters ?? [])
        if (f.type === 'RequestMirror') {
          const b = f.requestMirror.backendRef;
          named.set(`${b.namespace ?? r.metadata.namespace}/${b.name}`, `${at} mirror`);
        }
    });
    for (const [id, where] of named) {
      const [ns, name] = id.split('/');
      if (!serviceKnown(ns, name))
        warnings.push(
          `${r.kind} ${r.metadata.namespace}/${r.metadata.name}: ${where} names unknown service ${id} (no Service resource, no instances): its requests fail with 503 until it exists`,
        );
    }
  }
  return warnings;
}

/** Routes whose parentRefs name a Service that does not exist: accepted, reported as warnings. */
export function parentRefWarnings(
  resources: readonly Resource[],
  serviceExists: (namespace: string, name: string) => boolean,
): string[] {
  const warnings: string[] = [];
  for (const r of resources) {
    if (r.kind !== 'HTTPRoute' && r.kind !== 'GRPCRoute') continue;
    for (const p of r.spec.parentRefs) {
      const ns = p.namespace ?? r.metadata.namespace;
      if (!serviceExists(ns, p.name))
        warnings.push(
          `${r.kind} ${r.metadata.namespace}/${r.metadata.name}: parentRef Service ${ns}/${p.name} does not exist (yet)`,
        );
    }
  }
  return warnings;
}
