/**
 * The data a template can use, and one watcher per piece of it: a blocking-query loop on
 * exactly that read (a service's passing instances, the service list, one key, one prefix),
 * which reports a change only when the data itself changed (a moved index alone is not one).
 */
import type {
  ControlClient,
  CatalogInstance,
  KvEntry,
  ServiceSummary,
} from '../cli/client/control-client.ts';
import { blockingQuery } from '../cli/client/blocking-query.ts';

export type Dependency =
  | { type: 'service'; name: string; namespace: string }
  | { type: 'services'; namespace: string | undefined }
  | { type: 'key'; key: string }
  | { type: 'ls'; prefix: string; recurse: boolean };

/** A stable id (map key) for a dependency. */
export function dependencyId(d: Dependency): string {
  switch (d.type) {
    case 'service':
      return `service:${d.namespace}/${d.name}`;
    case 'services':
      return `services:${d.namespace ?? '*'}`;
    case 'key':
      return `key:${d.key}`;
    case 'ls':
      return `${d.recurse ? 'tree' : 'ls'}:${d.prefix}`;
  }
}

/** What `service` gives a template for one instance. */
export interface TemplateInstance {
  id: string;
  service: string;
  namespace: string;
  address: string;
  port: number;
  /** The sidecar's inbound port, or the app port when the instance has no sidecar. */
  meshPort: number;
  meshed: boolean;
  version: string;
  labels: Record<string, string>;
  status: string;
}

export interface TemplateKv {
  /** The key relative to the prefix (`maxconn` for `app/maxconn` under `app/`). */
  key: string;
  /** The full key. */
  path: string;
  value: string;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function toInstance(i: CatalogInstance): TemplateInstance {
  return {
    id: i.id,
    service: i.service,
    namespace: i.namespace,
    address: i.address,
    port: i.port,
    meshPort: i.meshPort ?? i.port,
    meshed: i.meshPort !== undefined,
    version: i.labels.version ?? '',
    labels: { ...i.labels },
    status: i.status,
  };
}

function toServices(list: ServiceSummary[], namespace: string | undefined): ServiceSummary[] {
  return list
    .filter((s) => namespace === undefined || s.namespace === namespace)
    .sort((a, b) => byString(a.namespace, b.namespace) || byString(a.name, b.name));
}

function toLs(list: KvEntry[], prefix: string, recurse: boolean): TemplateKv[] {
  return list
    .map((e) => ({ key: e.key.slice(prefix.length), path: e.key, value: e.value }))
    .filter((e) => e.key !== '' && (recurse || !e.key.includes('/')))
    .sort((a, b) => byString(a.key, b.key));
}

/**
 * One read of a dependency (a blocking query when `index` is set); the value is in the
 * stable form templates see (sorted, only passing instances).
 */
export async function fetchDependency(
  client: ControlClient,
  d: Dependency,
  block: { index?: number; waitMs?: number; signal?: AbortSignal },
): Promise<{ value: unknown; index: number | undefined }> {
  switch (d.type) {
    case 'service': {
      const a = await client.instances(d.namespace, d.name, { ...block, passing: true });
      return { value: a.body.map(toInstance).sort((x, y) => byString(x.id, y.id)), index: a.index };
    }
    case 'services': {
      const a = await client.services(block);
      return { value: toServices(a.body, d.namespace), index: a.index };
    }
    case 'key': {
      const a = await client.kvGet(d.key, block);
      return { value: a.body?.value, index: a.index };
    }
    case 'ls': {
      const a = await client.kvList(d.prefix, block);
      return { value: toLs(a.body, d.prefix, d.recurse), index: a.index };
    }
  }
}

/**
 * Follows one dependency with blocking queries. `ready` settles with the first read (rejects
 * if it fails; the watcher keeps retrying and reports the first success as a change).
 */
export class DependencyWatcher {
  readonly dependency: Dependency;
  readonly ready: Promise<void>;
  #value: unknown;
  #json: string | undefined;
  #error: unknown;
  readonly #abort = new AbortController();
  readonly #loop: Promise<void>;

  constructor(
    client: ControlClient,
    dependency: Dependency,
    opts: { waitMs?: number; onChange: () => void; onError?: (err: unknown) => void },
  ) {
    this.dependency = dependency;
    let settle!: (err?: unknown) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      let done = false;
      settle = (err) => {
        if (done) return;
        done = true;
        if (err === undefined) resolve();
        else reject(err);
      };
    });
    // A rejected `ready` nobody awaited must not crash the process.
    this.ready.catch(() => undefined);
    const reads = blockingQuery(
      (b) =>
        fetchDependency(client, dependency, b).then((r) => ({
          status: 200,
          body: r.value,
          index: r.index,
          headers: {},
        })),
      {
        signal: this.#abort.signal,
        waitMs: opts.waitMs,
        onError: (err) => {
          this.#error = err;
          settle(err);
          opts.onError?.(err);
        },
      },
    );
    this.#loop = (async () => {
      let first = true;
      for await (const { body } of reads) {
        const json = JSON.stringify(body) ?? 'undefined';
        const changed = json !== this.#json;
        const hadError = this.#error !== undefined;
        this.#value = body;
        this.#json = json;
        this.#error = undefined;
        if (first) {
          first = false;
          settle();
          if (!hadError) continue;
        }
        if (changed || hadError) opts.onChange();
      }
    })();
  }

  /** The last value read (undefined before the first read or for an absent key). */
  get value(): unknown {
    return this.#value;
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop.catch(() => undefined);
  }
}
