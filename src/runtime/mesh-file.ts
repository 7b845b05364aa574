/**
 * The mesh file of `hexmesh up -f mesh.yaml`: the services to run (command, port, replicas,
 * version, health check) and the mesh resources to apply. Validated once, here, with every
 * problem reported by path (as src/config/load.ts `validate`); the result is frozen and has
 * every path resolved against the file's folder.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import {
  ConfigError,
  deepFreeze,
  parseDocuments,
  readOneDocument,
  validate,
  type ConfigProblem,
} from '../config/load.ts';
import { parseDuration } from '../config/duration.ts';
import { validateResources } from '../control/validate-resource.ts';

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, -)');

const durationMs = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = typeof v === 'number' ? v : parseDuration(v);
  if (ms === undefined || ms < 0) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration like 500ms, 1s or 2m' });
    return z.NEVER;
  }
  return ms;
});

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:7070');

const healthCheckSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('http'), path: z.string().startsWith('/').default('/health') }).strict(),
  z.object({ type: z.literal('tcp') }).strict(),
  z.object({ type: z.literal('grpc') }).strict(),
]);

const serviceSchema = z
  .object({
    name: dnsLabel,
    namespace: dnsLabel.default('default'),
    /** The program; `node` means the Node.js running hexmesh (no PATH lookup). */
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: z.record(z.string(), z.string()).default({}),
    /** Working directory, relative to the mesh file's folder. */
    cwd: z.string().default('.'),
    /** The app's port, or `auto`: the runtime picks a free one per replica and passes it in PORT. */
    port: z.union([z.literal('auto'), z.number().int().min(1).max(65535)]).default('auto'),
    replicas: z.number().int().min(0).max(64).default(1),
    /** Shortcut for `labels.version`. */
    version: z.string().min(1).optional(),
    labels: z.record(z.string(), z.string()).default({}),
    protocol: z.enum(['http', 'http2', 'grpc', 'tcp']).default('http'),
    /** Run by the instance's sidecar; the instance is `critical` (no traffic) until it passes. */
    healthCheck: healthCheckSchema.optional(),
    serviceAccount: dnsLabel.optional(),
    /** Restart backoff: `initialBackoff` doubling up to `maxBackoff` (1 s → 30 s). */
    restart: z
      .object({ initialBackoff: durationMs.default(1000), maxBackoff: durationMs.default(30_000) })
      .strict()
      .default({ initialBackoff: 1000, maxBackoff: 30_000 }),
    /** Print this service's URL when the mesh is up (the frontend). */
    public: z.boolean().default(false),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.port !== 'auto' && s.replicas > 1)
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: `a fixed port cannot serve ${s.replicas} replicas on one machine; use port: auto`,
      });
    if (s.labels.version !== undefined && s.version !== undefined && s.labels.version !== s.version)
      ctx.addIssue({ code: 'custom', path: ['version'], message: 'differs from labels.version' });
    // The control plane scopes a workload to the service named like its service account
    // (docs/api-security.md): a sidecar with another one would be refused on its discovery stream.
    if (s.serviceAccount !== undefined && s.serviceAccount !== s.name)
      ctx.addIssue({
        code: 'custom',
        path: ['serviceAccount'],
        message: `must be the service's name (${s.name}) for now: the control plane lets a workload act only for the service named like its service account`,
      });
    if (s.restart.maxBackoff < s.restart.initialBackoff)
      ctx.addIssue({ code: 'custom', path: ['restart', 'maxBackoff'], message: 'is below initialBackoff' });
  });

const meshFileSchema = z
  .object({
    controlPlane: z
      .object({
        /** API + discovery address; port 0 picks a free one. */
        listen: hostPort.default('127.0.0.1:7070'),
        /** Store, logs and state; relative to the mesh file's folder. */
        dataDir: z.string().default('.hexmesh'),
      })
      .strict()
      .default({ listen: '127.0.0.1:7070', dataDir: '.hexmesh' }),
    services: z.array(serviceSchema).default([]),
    /** Mesh resources (Service, HTTPRoute, GRPCRoute, TrafficPolicy, ...) applied to the control plane. */
    resources: z.array(z.unknown()).default([]),
    /** Files of resources (YAML, multi-document), relative to the mesh file's folder. */
    include: z.array(z.string()).default([]),
    /** `hexmesh up --once`: after every instance is passing, GET this path on this service's app: 2xx = the mesh works. */
    smokeTest: z
      .object({ service: dnsLabel, path: z.string().startsWith('/') })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const seen = new Map<string, number>();
    const reported = new Set<number>();
    m.services.forEach((s, i) => {
      const key = `${s.namespace}/${s.name}/${s.version ?? s.labels.version ?? ''}`;
      const prev = seen.get(key);
      if (prev !== undefined && reported.add(i))
        ctx.addIssue({
          code: 'custom',
          path: ['services', i, 'name'],
          message: `${s.name}${s.version ? ` ${s.version}` : ''} is also services[${prev}]; give each a different version`,
        });
      seen.set(key, i);
    });
    // Two services on one fixed port: the second app (or its sidecar) could never bind it.
    const ports = new Map<number, number>();
    m.services.forEach((s, i) => {
      if (s.port === 'auto') return;
      const prev = ports.get(s.port);
      if (prev !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['services', i, 'port'],
          message: `port ${s.port} is also services[${prev}].port; use another port or port: auto`,
        });
      else ports.set(s.port, i);
    });
    // Instance ids are catalog ids: two instances with one id would replace each other
    // (`web` v `a` and `web-a`; one name in two namespaces).
    const names = new Map<string, number>();
    for (const s of m.services) names.set(s.name, (names.get(s.name) ?? 0) + 1);
    const ids = new Map<string, number>();
    m.services.forEach((s, i) => {
      if (reported.has(i)) return;
      const version = s.version ?? s.labels.version;
      const stem = instanceStem(s.name, version, (names.get(s.name) ?? 0) > 1);
      for (let n = 1; n <= s.replicas; n++) {
        const prev = ids.get(`${stem}-${n}`);
        if (prev !== undefined && prev !== i) {
          ctx.addIssue({
            code: 'custom',
            path: ['services', i, 'name'],
            message: `instance id ${stem}-${n} is also one of services[${prev}]'s; rename one of them`,
          });
          return;
        }
        ids.set(`${stem}-${n}`, i);
      }
    });
    if (m.smokeTest && !m.services.some((s) => s.name === m.smokeTest!.service))
      ctx.addIssue({
        code: 'custom',
        path: ['smokeTest', 'service'],
        message: 'names no service of this file',
      });
  });

/**
 * The stem of a service entry's instance ids (`<stem>-<n>`): its name, or `<name>-<version>`
 * when several entries share the name (instanceSpecs in mesh-runner.ts names instances so).
 */
export function instanceStem(name: string, version: string | undefined, sharesName: boolean): string {
  return sharesName && version ? `${name}-${version}` : name;
}

type ServiceIn = z.infer<typeof serviceSchema>;

/** One service entry, resolved: absolute cwd, version folded into labels. */
export interface MeshService extends Omit<ServiceIn, 'version'> {
  readonly version: string | undefined;
}

export interface MeshFile {
  /** Absolute path of the file. */
  readonly file: string;
  readonly controlPlane: { readonly listen: string; readonly dataDir: string };
  readonly services: readonly MeshService[];
  /** Inline resources then the included files' documents, each validated. */
  readonly resources: readonly unknown[];
  readonly smokeTest?: { readonly service: string; readonly path: string };
}

/** Read and validate a mesh file; throws ConfigError listing every problem (including the included files'). */
export async function loadMeshFile(file: string): Promise<MeshFile> {
  const abs = resolve(file);
  return parseMeshFile(await readOneDocument(abs, file), abs);
}

/** Validate a parsed mesh document (`file` anchors relative paths); reads the `include`d files. */
export async function parseMeshFile(doc: unknown, file: string): Promise<MeshFile> {
  const base = dirname(file);
  const problems: ConfigProblem[] = [];
  const r = meshFileSchema.safeParse(doc);
  if (!r.success) {
    try {
      // The one formatter of problems (paths, values, unknown fields).
      validate(meshFileSchema, doc, file);
    } catch (e) {
      if (e instanceof ConfigError) problems.push(...e.problems);
      else throw e;
    }
  }
  const raw = (doc ?? {}) as { resources?: unknown; include?: unknown };
  const inline = Array.isArray(raw.resources) ? raw.resources : [];
  const resources: unknown[] = [];
  const seen = new Map<string, string>();
  inline.forEach((d, i) => checkResource(d, `resources[${i}]`, problems, resources, seen));
  const include = Array.isArray(raw.include) ? raw.include : [];
  for (const [i, p] of include.entries()) {
    if (typeof p !== 'string') continue;
    const path = isAbsolute(p) ? p : resolve(base, p);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      problems.push({ path: `include[${i}]`, value: p, message: `cannot read: ${(e as Error).message}` });
      continue;
    }
    try {
      parseDocuments(text, p).forEach((d, j) =>
        checkResource(d, `include[${i}] (${p}) [${j}]`, problems, resources, seen),
      );
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const q of e.problems) problems.push({ ...q, path: `include[${i}] (${p}) ${q.path}` });
    }
  }
  if (problems.length || !r.success) throw new ConfigError(file, problems);
  const m = r.data;
  return deepFreeze({
    file,
    controlPlane: { listen: m.controlPlane.listen, dataDir: resolve(base, m.controlPlane.dataDir) },
    services: m.services.map((s) => {
      const { version, ...rest } = s;
      const v = version ?? s.labels.version;
      return {
        ...rest,
        version: v,
        labels: v ? { ...s.labels, version: v } : s.labels,
        cwd: resolve(base, s.cwd),
      };
    }),
    resources,
    ...(m.smokeTest ? { smokeTest: m.smokeTest } : {}),
  });
}

/**
 * Validate one resource document into `out`; `seen` (kind/namespace/name → where) refuses a
 * second resource of the same name, which would otherwise silently replace the first on apply.
 */
function checkResource(
  doc: unknown,
  at: string,
  problems: ConfigProblem[],
  out: unknown[],
  seen: Map<string, string>,
): void {
  try {
    validateResources([doc], at);
    const r = doc as { kind: string; metadata: { name: string; namespace?: string } };
    const key = `${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
    const prev = seen.get(key);
    if (prev !== undefined) {
      problems.push({
        path: `${at}.metadata.name`,
        value: r.metadata.name,
        message: `${key} is also ${prev}; one resource per kind and name`,
      });
      return;
    }
    seen.set(key, at);
    out.push(doc);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) problems.push({ ...p, path: p.path ? `${at}.${p.path}` : at });
  }
}
