/**
 * A small typed client of the control plane's REST API (docs/control-api.md) for the CLI
 * verbs. One undici Pool per client; every answer's `X-Hexmesh-Index` is returned with its
 * body; JSON error bodies become `ControlApiError`s whose message is ready to print.
 */
import { Pool, errors as undiciErrors } from 'undici';
import type { Instance } from '../../control/catalog/instance.ts';
import type { ConfigProblem } from '../../config/load.ts';

/** Default control-plane URL when neither `--control` nor `HEXMESH_CONTROL` is given. */
export const DEFAULT_CONTROL_URL = 'http://127.0.0.1:7070';

/** `--control URL` wins, then env `HEXMESH_CONTROL`, then the default. */
export function controlUrl(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return (flag || env.HEXMESH_CONTROL || DEFAULT_CONTROL_URL).replace(/\/+$/, '');
}

/** Why a call failed: `unreachable` (no answer at all) or an HTTP status with the API's code. */
export class ControlApiError extends Error {
  readonly status: number;
  /** `HEXMESH_ERR_...` from the error body, or `HEXMESH_ERR_CONNECT_FAILED` when unreachable. */
  readonly code: string;
  readonly problems: readonly ConfigProblem[];
  /** The whole `error` object of the answer (e.g. `applied`/`failed` of a half-done apply). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    status: number,
    code: string,
    message: string,
    opts: { problems?: ConfigProblem[]; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ControlApiError';
    this.status = status;
    this.code = code;
    this.problems = opts.problems ?? [];
    this.details = Object.freeze({ ...(opts.details ?? {}) });
  }
}

export interface Answer<T> {
  status: number;
  body: T;
  /** `X-Hexmesh-Index`, or undefined when the server sent none. */
  index: number | undefined;
  headers: Record<string, string | string[] | undefined>;
}

export interface StoredResource {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  spec: Record<string, unknown>;
}

export interface ApplyAnswer {
  results: {
    kind: string;
    namespace: string;
    name: string;
    action: 'created' | 'configured' | 'unchanged';
    resourceVersion: string;
  }[];
  warnings: string[];
}

export interface ServiceSummary {
  name: string;
  namespace: string;
  instances: number;
  passing: number;
  warning: number;
  critical: number;
  versions: string[];
}

export interface KvEntry {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
}

export type CatalogInstance = Instance & { statusChangedAt?: string; checkedAt?: string };

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  /** A string is sent as is (with `contentType`); anything else as JSON. */
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** Statuses answered normally instead of thrown (e.g. 404 for "absent"). */
  accept?: readonly number[];
}

/** The noun for error messages: `service "x"`, `key "a/b"`, `HTTPRoute "r"`. */
type Subject = string | undefined;

export class ControlClient {
  readonly baseUrl: string;
  readonly #pool: Pool;
  readonly #pathPrefix: string;
  readonly #authorization: string | undefined;

  /**
   * `opts.token`: an API token sent as `Authorization: Bearer` (docs/api-security.md).
   * `opts.ca`: PEM trusted for an https:// URL instead of the system roots (the bundle
   * `hexmesh control --tls` writes), so no NODE_EXTRA_CA_CERTS is needed.
   */
  constructor(baseUrl: string, opts: { token?: string; ca?: string } = {}) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new ControlApiError(
        0,
        'HEXMESH_ERR_BAD_REQUEST',
        `invalid control plane URL ${JSON.stringify(baseUrl)}`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new ControlApiError(
        0,
        'HEXMESH_ERR_BAD_REQUEST',
        `control plane URL must be http(s)://host:port (got ${baseUrl})`,
      );
    this.baseUrl = baseUrl;
    this.#authorization = opts.token ? `Bearer ${opts.token}` : undefined;
    this.#pathPrefix = url.pathname.replace(/\/+$/, '');
    // Blocking queries may wait up to 10 min (+ jitter): no body timeout of our own.
    this.#pool = new Pool(url.origin, {
      connections: 4,
      bodyTimeout: 0,
      headersTimeout: 0,
      connectTimeout: 5_000,
      ...(opts.ca && url.protocol === 'https:' ? { connect: { ca: opts.ca } } : {}),
    });
  }

  /** One call; throws ControlApiError (unreachable, or a non-2xx status not in `accept`). */
  async request<T>(
    method: string,
    path: string,
    opts: RequestOptions = {},
    subject?: Subject,
  ): Promise<Answer<T>> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {}))
      if (v !== undefined && v !== false) qs.set(k, String(v));
    const q = qs.size ? `?${qs}` : '';
    let body: string | undefined;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#authorization) headers.authorization = this.#authorization;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] =
        opts.contentType ?? (typeof opts.body === 'string' ? 'text/plain' : 'application/json');
    }
    let res;
    try {
      res = await this.#pool.request({
        method: method as 'GET',
        path: this.#pathPrefix + path + q,
        body,
        headers,
        signal: opts.signal,
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new ControlApiError(
        0,
        'HEXMESH_ERR_CONNECT_FAILED',
        `cannot reach control plane at ${this.baseUrl}: ${describeNetError(err)}`,
        { cause: err },
      );
    }
    const text = await res.body.text();
    const idx = res.headers['x-hexmesh-index'];
    const index = typeof idx === 'string' && idx !== '' ? Number(idx) : undefined;
    const isJson = String(res.headers['content-type'] ?? '').includes('json');
    let parsed: unknown = text;
    if (isJson && text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ControlApiError(
          res.statusCode,
          'HEXMESH_ERR_BAD_REQUEST',
          `control plane at ${this.baseUrl} answered malformed JSON (status ${res.statusCode})`,
        );
      }
    }
    if ((res.statusCode >= 200 && res.statusCode < 300) || opts.accept?.includes(res.statusCode))
      return { status: res.statusCode, body: parsed as T, index, headers: res.headers };
    throw toApiError(res.statusCode, parsed, subject, this.baseUrl);
  }

  /**
   * A streaming GET (tap's NDJSON): the open body once the status is 2xx, with the same
   * credentials and trust anchor as every other call; a non-2xx answer becomes the API's
   * ControlApiError. The body ends when `signal` aborts.
   */
  async stream(path: string, query: URLSearchParams, signal: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const headers: Record<string, string> = { accept: 'application/x-ndjson' };
    if (this.#authorization) headers.authorization = this.#authorization;
    let res;
    try {
      res = await this.#pool.request({
        method: 'GET',
        path: `${this.#pathPrefix}${path}${query.size ? `?${query}` : ''}`,
        headers,
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw new ControlApiError(
        0,
        'HEXMESH_ERR_CONNECT_FAILED',
        `cannot reach control plane at ${this.baseUrl}: ${describeNetError(err)}`,
        { cause: err },
      );
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return res.body;
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {}
    throw toApiError(res.statusCode, parsed, undefined, this.baseUrl);
  }

  // ---- resources ----

  listResources(kind?: string, namespace?: string, block?: BlockOptions): Promise<Answer<StoredResource[]>> {
    return this.request('GET', '/v1/resources', {
      query: { kind, namespace, ...blockQuery(block) },
      signal: block?.signal,
    });
  }

  getResource(kind: string, namespace: string, name: string): Promise<Answer<StoredResource>> {
    return this.request(
      'GET',
      `/v1/resources/${seg(kind)}/${seg(namespace)}/${seg(name)}`,
      {},
      `${kind} "${name}"${ns(namespace)}`,
    );
  }

  deleteResource(
    kind: string,
    namespace: string,
    name: string,
    resourceVersion?: string,
  ): Promise<Answer<unknown>> {
    return this.request(
      'DELETE',
      `/v1/resources/${seg(kind)}/${seg(namespace)}/${seg(name)}`,
      { query: { resourceVersion } },
      `${kind} "${name}"${ns(namespace)}`,
    );
  }

  /** `POST /v1/apply` of parsed documents (sent as a JSON array: problems index them `[i]`). */
  apply(docs: readonly unknown[]): Promise<Answer<ApplyAnswer>> {
    return this.request('POST', '/v1/apply', { body: docs });
  }

  // ---- catalog ----

  services(block?: BlockOptions): Promise<Answer<ServiceSummary[]>> {
    return this.request('GET', '/v1/catalog/services', { query: blockQuery(block), signal: block?.signal });
  }

  /** Instances of a service (an empty list, not an error, when it has none). */
  instances(
    namespace: string,
    name: string,
    opts: { passing?: boolean } & BlockOptions = {},
  ): Promise<Answer<CatalogInstance[]>> {
    return this.request(
      'GET',
      `/v1/catalog/service/${seg(namespace)}/${seg(name)}`,
      { query: { passing: opts.passing ? 1 : undefined, ...blockQuery(opts) }, signal: opts.signal },
      `service "${name}"${ns(namespace)}`,
    );
  }

  register(body: Record<string, unknown>): Promise<Answer<{ id: string; lease: number; status: string }>> {
    return this.request('PUT', '/v1/catalog/register', { body });
  }

  deregister(namespace: string, service: string, id: string): Promise<Answer<unknown>> {
    return this.request(
      'PUT',
      `/v1/catalog/deregister/${seg(namespace)}/${seg(service)}/${seg(id)}`,
      {},
      `instance "${id}" of service "${service}"${ns(namespace)}`,
    );
  }

  heartbeat(lease: number | string): Promise<Answer<{ ok: boolean; lease: number }>> {
    return this.request('PUT', `/v1/catalog/heartbeat/${seg(String(lease))}`, {}, `lease ${lease}`);
  }

  reportStatus(
    namespace: string,
    service: string,
    id: string,
    status: string,
    output?: string,
  ): Promise<Answer<CatalogInstance>> {
    return this.request(
      'PUT',
      `/v1/catalog/status/${seg(namespace)}/${seg(service)}/${seg(id)}`,
      { body: { status, output } },
      `instance "${id}" of service "${service}"${ns(namespace)}`,
    );
  }

  // ---- KV ----

  /** One key, or undefined when absent (the answer still carries the index). */
  async kvGet(key: string, block?: BlockOptions): Promise<Answer<KvEntry | undefined>> {
    const a = await this.request<KvEntry>('GET', `/v1/kv/${kvPath(key)}`, {
      query: blockQuery(block),
      signal: block?.signal,
      accept: [404],
    });
    return a.status === 404 ? { ...a, body: undefined } : a;
  }

  /** Every entry under `prefix` (empty when none). */
  async kvList(prefix: string, block?: BlockOptions): Promise<Answer<KvEntry[]>> {
    const a = await this.request<KvEntry[]>('GET', `/v1/kv/${kvPath(prefix)}`, {
      query: { recurse: 1, ...blockQuery(block) },
      signal: block?.signal,
      accept: [404],
    });
    return a.status === 404 ? { ...a, body: [] } : a;
  }

  kvPut(key: string, value: string, cas?: number): Promise<Answer<{ ok: boolean; modRevision: number }>> {
    return this.request('PUT', `/v1/kv/${kvPath(key)}`, {
      body: value,
      contentType: 'application/octet-stream',
      query: { cas },
    });
  }

  kvDelete(
    key: string,
    opts: { recurse?: boolean; cas?: number } = {},
  ): Promise<Answer<{ ok: boolean; deleted: number }>> {
    return this.request('DELETE', `/v1/kv/${kvPath(key)}`, {
      query: { recurse: opts.recurse ? 1 : undefined, cas: opts.cas },
    });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** Drop connections now (an in-flight blocking query is aborted). */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
  }
}

/** Parameters of a blocking query (Consul's `?index=N&wait=...`). */
export interface BlockOptions {
  index?: number;
  /** Milliseconds; the server caps it at 10 min. */
  waitMs?: number;
  signal?: AbortSignal;
}

function blockQuery(b?: BlockOptions): Record<string, string | number | undefined> {
  if (!b || b.index === undefined || b.index <= 0) return {};
  return {
    index: b.index,
    wait: b.waitMs === undefined ? undefined : `${Math.max(1, Math.round(b.waitMs))}ms`,
  };
}

const seg = (s: string) => encodeURIComponent(s);
const kvPath = (key: string) => key.replace(/^\/+/, '').split('/').map(encodeURIComponent).join('/');
const ns = (namespace: string) => (namespace === 'default' ? '' : ` in namespace "${namespace}"`);

/** `connect ECONNREFUSED 127.0.0.1:7070`, `getaddrinfo ENOTFOUND cp.example`, `connect timeout`. */
function describeNetError(err: unknown): string {
  if (err instanceof undiciErrors.ConnectTimeoutError) return 'connect timeout';
  const e = err as NodeJS.ErrnoException & { cause?: unknown };
  if (e && typeof e.message === 'string' && e.message) return e.message;
  return String(err);
}

function toApiError(status: number, body: unknown, subject: Subject, baseUrl: string): ControlApiError {
  const e = (body as { error?: { code?: string; message?: string; problems?: ConfigProblem[] } } | undefined)
    ?.error;
  const code = e?.code ?? `HTTP_${status}`;
  if (status === 404 && code === 'HEXMESH_ERR_NOT_FOUND' && subject)
    return new ControlApiError(status, code, `${subject} not found`, { details: e });
  const message =
    e?.message ??
    `control plane at ${baseUrl} answered ${status}${typeof body === 'string' && body ? `: ${body.slice(0, 200)}` : ''}`;
  return new ControlApiError(status, code, message, {
    problems: e?.problems,
    details: e as Record<string, unknown>,
  });
}
