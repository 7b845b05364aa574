/**
 * Resources API: list, get, create/replace, delete, and apply (many at once). Every
 * write is validated in full before anything is written; a `metadata.resourceVersion`
 * (or `?resourceVersion=` on delete) turns the write into a compare-and-set (409).
 */
import { KEYS, StoreError, type KeyValue } from '../../store/store.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { ApiError, badRequest, fromStoreError, notFound } from '../http/error-response.ts';
import { parseResourceDocuments } from '../http/body.ts';
import type { ApiRequest, JsonResult, Router } from '../http/router.ts';
import {
  KNOWN_KINDS,
  backendRefWarnings,
  canonicalJson,
  parentRefWarnings,
  unknownKindMessage,
  validateResources,
  type StoredDoc,
  type ValidResource,
} from '../validate-resource.ts';
import { ConfigError, type ConfigProblem } from '../../config/load.ts';
import type { Resource } from '../../config/resources.ts';
import { analyzeResources } from '../../config/analyze.ts';
import { blockIfAsked, flag, type ApiContext } from './context.ts';

export interface ApplyResult {
  kind: string;
  namespace: string;
  name: string;
  action: 'created' | 'configured' | 'unchanged';
  resourceVersion: string;
}

/** A stored resource as the API shows it: resourceVersion = the key's modRevision. */
export function showResource(kv: KeyValue): StoredDoc {
  const doc = JSON.parse(kv.value) as StoredDoc;
  doc.metadata.resourceVersion = String(kv.modRevision);
  return doc;
}

function checkKind(kind: string): void {
  if (!KNOWN_KINDS.has(kind)) throw badRequest(unknownKindMessage(kind));
}

export function resourceRoutes(router: Router, ctx: ApiContext): void {
  router.add(
    'GET',
    '/v1/resources',
    async (req) => {
      const kind = req.query.get('kind') ?? undefined;
      const namespace = req.query.get('namespace') ?? undefined;
      if (kind) checkKind(kind);
      const prefix = kind ? `${KEYS.resources}${kind}/${namespace ? `${namespace}/` : ''}` : KEYS.resources;
      await blockIfAsked(ctx, req, prefix);
      const r = await ctx.store.range(prefix);
      let items = r.kvs.map(showResource);
      if (namespace && !kind) items = items.filter((d) => d.metadata.namespace === namespace);
      return { json: items, index: r.revision };
    },
    'resources:read',
  );

  router.add(
    'GET',
    '/v1/resources/:kind/:namespace/:name',
    async (req) => {
      const { kind, namespace, name } = req.params;
      checkKind(kind);
      const key = KEYS.resource(kind, namespace, name);
      await blockIfAsked(ctx, req, key, true);
      const { kv, revision } = await getWithRevision(ctx, key);
      if (!kv)
        throw new ApiError('HEXMESH_ERR_NOT_FOUND', `${kind} ${namespace}/${name} not found`, {
          details: { index: revision },
        });
      return { json: showResource(kv), index: revision };
    },
    'resources:read',
  );

  router.add(
    'PUT',
    '/v1/resources/:kind/:namespace/:name',
    async (req) => {
      const { kind, namespace, name } = req.params;
      checkKind(kind);
      const docs = parseResourceDocuments(req.raw, await req.body());
      if (docs.length !== 1) throw badRequest(`expected one resource in the body, found ${docs.length}`);
      const doc = docs[0] as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
      // The URL names the resource; the body may leave namespace out but must not contradict it.
      if (
        doc &&
        typeof doc === 'object' &&
        doc.metadata &&
        typeof doc.metadata === 'object' &&
        doc.metadata.namespace === undefined
      )
        doc.metadata.namespace = namespace;
      const [valid] = validateResources(docs);
      const m = valid.doc.metadata;
      if (valid.doc.kind !== kind || m.namespace !== namespace || m.name !== name)
        throw badRequest(
          `the body is ${valid.doc.kind} ${m.namespace}/${m.name} but the URL names ${kind} ${namespace}/${name}`,
        );
      const { results, warnings, revision } = await apply(ctx, [valid]);
      const kv = await ctx.store.get(KEYS.resource(kind, namespace, name));
      return {
        status: results[0].action === 'created' ? 201 : 200,
        json: kv ? showResource(kv) : valid.doc,
        index: revision,
        headers: warningHeader(warnings),
      };
    },
    'resources:write',
  );

  router.add(
    'DELETE',
    '/v1/resources/:kind/:namespace/:name',
    async (req) => {
      const { kind, namespace, name } = req.params;
      checkKind(kind);
      const rv = req.query.get('resourceVersion');
      let prevModRevision: number | undefined;
      if (rv !== null) {
        prevModRevision = Number(rv);
        if (!Number.isSafeInteger(prevModRevision) || prevModRevision <= 0)
          throw badRequest(`resourceVersion must be a positive integer (got ${JSON.stringify(rv)})`);
      }
      const r = await ctx.store.delete(KEYS.resource(kind, namespace, name), { prevModRevision });
      if (r.deleted === 0) throw notFound(`${kind} ${namespace}/${name}`);
      return { json: { kind, namespace, name, action: 'deleted' }, index: r.revision };
    },
    'resources:write',
  );

  // The stored config analysed as on apply (`hexmesh check` shows these): references to
  // Services and backends that do not exist.
  router.add(
    'GET',
    '/v1/analyze',
    async () => {
      const { resources, invalid, revision } = await storedResources(ctx);
      return {
        json: {
          warnings: [...(await referenceWarnings(ctx, resources)), ...(await storedAnalysis(ctx, resources))],
          errors: invalid,
        },
        index: revision,
      };
    },
    'resources:read',
  );

  router.add(
    'POST',
    '/v1/apply',
    async (req: ApiRequest): Promise<JsonResult> => {
      const docs = parseResourceDocuments(req.raw, await req.body());
      const valid = validateResources(docs);
      // ?dryRun: validate, check every resourceVersion and report what would happen, write nothing
      // (`hexmesh apply` checks a large set this way before writing it in batches).
      const { results, warnings, revision } = await apply(ctx, valid, flag(req.query, 'dryRun'));
      return { json: { results, warnings }, index: revision };
    },
    'resources:write',
  );
}

/** Warnings as the HTTP `Warning` header (as Kubernetes: `299 - "text"`). */
function warningHeader(warnings: readonly string[]): Record<string, string> {
  return warnings.length ? { warning: warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', ') } : {};
}

/** `get` plus the store revision the read reflects (taken before the read: never too new). */
async function getWithRevision(ctx: ApiContext, key: string): Promise<{ kv?: KeyValue; revision: number }> {
  // A range on the key itself returns it first when it exists (keys sort after their prefixes).
  const r = await ctx.store.range(key, { limit: 1 });
  const kv = r.kvs[0]?.key === key ? r.kvs[0] : undefined;
  return { kv, revision: r.revision };
}

/**
 * Write validated resources: first read them all and check every resourceVersion (a
 * conflict writes nothing), then write the ones that changed. A store failure part-way
 * reports which were written.
 */
async function apply(
  ctx: ApiContext,
  valid: readonly ValidResource[],
  dryRun = false,
): Promise<{ results: ApplyResult[]; warnings: string[]; revision: number }> {
  const current = await Promise.all(
    valid.map((v) => ctx.store.get(KEYS.resource(v.doc.kind, v.doc.metadata.namespace, v.doc.metadata.name))),
  );
  valid.forEach((v, i) => {
    const actual = current[i]?.modRevision ?? 0;
    if (v.resourceVersion !== undefined && v.resourceVersion !== actual)
      throw new ApiError(
        'HEXMESH_ERR_CONFLICT',
        `${v.doc.kind} ${v.doc.metadata.namespace}/${v.doc.metadata.name} was modified: resourceVersion ${v.resourceVersion} sent, current is ${actual === 0 ? 'none (deleted)' : actual}; nothing was written`,
        {
          details: {
            kind: v.doc.kind,
            namespace: v.doc.metadata.namespace,
            name: v.doc.metadata.name,
            expected: v.resourceVersion,
            actual,
          },
        },
      );
  });
  const warnings = await referenceWarnings(
    ctx,
    valid.map((v) => v.parsed),
    valid,
  );
  const results: ApplyResult[] = [];
  let revision = 0;
  for (let i = 0; i < valid.length; i++) {
    const v = valid[i];
    const cur = current[i];
    const { kind, metadata } = v.doc;
    const key = KEYS.resource(kind, metadata.namespace, metadata.name);
    const prevDoc = cur ? (JSON.parse(cur.value) as StoredDoc) : undefined;
    const created =
      (prevDoc?.metadata.creationTimestamp as string | undefined) ?? new Date(ctx.now()).toISOString();
    const toStore: StoredDoc = { ...v.doc, metadata: { ...v.doc.metadata, creationTimestamp: created } };
    const base = { kind, namespace: metadata.namespace, name: metadata.name };
    if (cur && canonicalJson(prevDoc) === canonicalJson(toStore)) {
      results.push({ ...base, action: 'unchanged', resourceVersion: String(cur.modRevision) });
      continue;
    }
    if (dryRun) {
      results.push({
        ...base,
        action: cur ? 'configured' : 'created',
        resourceVersion: String(cur?.modRevision ?? 0),
      });
      continue;
    }
    try {
      // Compare-and-set only when the client sent a resourceVersion; otherwise last write wins.
      const w = await ctx.store.put(key, JSON.stringify(toStore), {
        prevModRevision: v.resourceVersion,
      });
      revision = w.revision;
      results.push({ ...base, action: cur ? 'configured' : 'created', resourceVersion: String(w.revision) });
    } catch (e) {
      const err = e instanceof StoreError ? fromStoreError(e) : (e as HexmeshError);
      throw new ApiError(
        err instanceof HexmeshError ? err.code : 'HEXMESH_ERR_INTERNAL',
        `apply stopped at ${kind} ${metadata.namespace}/${metadata.name} after writing ${results.length} of ${valid.length}: ${err.message}`,
        { cause: e, details: { applied: results, failed: base } },
      );
    }
  }
  if (!revision) revision = await ctx.store.revision();
  return { results, warnings, revision };
}

/**
 * What `istioctl analyze` would say about these routes: parentRefs naming no Service, backends
 * naming a service that is neither a Service resource nor in the catalog. `applying` counts as
 * existing (a Service applied with its route).
 */
async function referenceWarnings(
  ctx: ApiContext,
  resources: readonly Resource[],
  applying: readonly ValidResource[] = [],
): Promise<string[]> {
  if (!resources.some((r) => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute')) return [];
  const { services, catalog } = await serviceIndex(ctx, applying);
  return [
    ...parentRefWarnings(resources, (ns, name) => services.has(`${ns}/${name}`)),
    ...backendRefWarnings(
      resources,
      (ns, name) => services.has(`${ns}/${name}`) || catalog.has(`${ns}/${name}`),
    ),
  ];
}

/** Service resources (and those being applied) and catalog services, as `namespace/name`. */
async function serviceIndex(
  ctx: ApiContext,
  applying: readonly ValidResource[] = [],
): Promise<{ services: Set<string>; catalog: Set<string> }> {
  const services = new Set<string>();
  for (const kv of (await ctx.store.range(`${KEYS.resources}Service/`)).kvs) {
    const d = JSON.parse(kv.value) as StoredDoc;
    services.add(`${d.metadata.namespace}/${d.metadata.name}`);
  }
  for (const v of applying)
    if (v.doc.kind === 'Service') services.add(`${v.doc.metadata.namespace}/${v.doc.metadata.name}`);
  // Catalog services: /hexmesh/instances/<namespace>/<service>/<id>.
  const catalog = new Set<string>();
  for (const kv of (await ctx.store.range(KEYS.instances)).kvs) {
    const [ns, name] = kv.key.slice(KEYS.instances.length).split('/');
    catalog.add(`${ns}/${name}`);
  }
  return { services, catalog };
}

/** The stored config's cross-resource mistakes (src/config/analyze.ts), as `istioctl analyze`. */
async function storedAnalysis(ctx: ApiContext, resources: readonly Resource[]): Promise<string[]> {
  const { services, catalog } = await serviceIndex(ctx);
  return analyzeResources(resources, {
    serviceKnown: (ns, name) => services.has(`${ns}/${name}`) || catalog.has(`${ns}/${name}`),
  });
}

/**
 * Every stored resource, parsed; the ones that no longer validate (stored by other means, or
 * before a check existed — every proxy refuses them) are named with their problems instead.
 */
async function storedResources(
  ctx: ApiContext,
): Promise<{ resources: Resource[]; invalid: string[]; revision: number }> {
  const r = await ctx.store.range(KEYS.resources);
  const resources: Resource[] = [];
  const invalid: string[] = [];
  for (const kv of r.kvs) {
    const id = kv.key.slice(KEYS.resources.length);
    try {
      resources.push(validateResources([JSON.parse(kv.value)], id)[0].parsed);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems.map(problemText).join('; ') : String(err);
      invalid.push(`stored ${id} does not validate, so every proxy that receives it refuses it: ${problems}`);
    }
  }
  return { resources, invalid, revision: r.revision };
}

function problemText(p: ConfigProblem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}
