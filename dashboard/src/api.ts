/**
 * The control plane's REST API as the dashboard reads it (docs/observability.md,
 * docs/control-api.md): typed shapes, one `getJson`, and the connection state every page
 * shares — an unreachable control plane shows one banner and greys the last data, and
 * every poll keeps retrying.
 */
import { auth } from './auth.ts';

// The stats shapes are the server's own (type-only: erased from the bundle).
export type { LatencyMs, ServiceStat, EdgeStat, RouteStat } from '../../src/control/metrics/views.ts';
import type { ServiceStat, EdgeStat, RouteStat } from '../../src/control/metrics/views.ts';
export interface ServicesView {
  windowMs: number;
  services: ServiceStat[];
}
export interface EdgesView {
  windowMs: number;
  edges: EdgeStat[];
}
export interface RoutesView {
  windowMs: number;
  routes: RouteStat[];
}
export type { ErrorRow, ErrorsView } from '../../src/control/metrics/errors-view.ts';
export interface TimeseriesView {
  stepMs: number;
  points: [number, number | null][];
}
export interface Target {
  id: string;
  service: string;
  namespace: string;
  adminAddress?: string;
  stale: boolean;
  lastScrape?: string;
  error?: string;
}
export interface TargetsView {
  collecting: boolean;
  intervalMs: number;
  targets: Target[];
}
export type { Instance } from '../../src/control/catalog/instance.ts';
export interface StoredResource {
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: Record<string, unknown>;
}

/** An answer that was not 2xx: the API's error code and message. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Base URL of the API: the page's own origin (the control plane serves both). */
const base = '';

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await getIndexed<T>(path, signal)).data;
}

/** GET `path` with its `X-Hexmesh-Index` (the store revision, for blocking queries). */
export async function getIndexed<T>(
  path: string,
  signal?: AbortSignal,
): Promise<{ data: T; index: number | undefined }> {
  let res: Response;
  try {
    res = await fetch(base + path, { signal, headers: auth.headers('application/json') });
  } catch (err) {
    if (signal?.aborted) throw err;
    connection.failed(err instanceof Error ? err.message : String(err));
    throw err;
  }
  const text = await res.text();
  if (res.status >= 502) connection.failed(`HTTP ${res.status}`);
  else if (res.status !== 401) connection.ok();
  if (!res.ok) throw apiError(res, text);
  const raw = Number(res.headers.get('x-hexmesh-index'));
  return { data: JSON.parse(text) as T, index: Number.isSafeInteger(raw) && raw > 0 ? raw : undefined };
}

/**
 * The error of a refused answer. A 401 also asks for a token (the sign-in form); a 403
 * keeps the API's message, which names the permission missing.
 */
export function apiError(res: Response, text: string): ApiError {
  let code = `HTTP_${res.status}`;
  let message = text.slice(0, 200) || res.statusText;
  try {
    const e = JSON.parse(text).error;
    code = e.code ?? code;
    message = e.message ?? message;
  } catch {
    // not JSON: keep the text
  }
  if (res.status === 401) {
    auth.unauthorized(message);
    connection.denied(message);
  }
  return new ApiError(res.status, code, message);
}

export interface ConnectionState {
  /** False after a request could not reach the control plane, until one does again. */
  online: boolean;
  /** Why the last request failed. */
  error?: string;
  /** When a request last reached the control plane (ms). */
  lastOk?: number;
  /** Set after a 401 (no token, or a wrong or revoked one), until a request is answered again. */
  denied?: string;
}

/** The shared connection state (a tiny external store for useSyncExternalStore). */
class Connection {
  #state: ConnectionState = { online: true };
  #lastOk: number | undefined;
  readonly #listeners = new Set<() => void>();

  /** A stable snapshot: a new object only when `online` or `error` changes. */
  get = (): ConnectionState => this.#state;

  subscribe = (fn: () => void): (() => void) => {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  };

  ok(): void {
    this.#lastOk = Date.now();
    if (!this.#state.online || this.#state.denied !== undefined)
      this.#set({ online: true, lastOk: this.#lastOk });
  }

  /** The control plane answered, but refused who we are (401): the badge turns red. */
  denied(message: string): void {
    this.#lastOk = Date.now();
    if (!this.#state.online || this.#state.denied !== message)
      this.#set({ online: true, denied: message, lastOk: this.#lastOk });
  }

  failed(error: string): void {
    if (this.#state.online || this.#state.error !== error)
      this.#set({ online: false, error, lastOk: this.#lastOk });
  }

  #set(s: ConnectionState): void {
    this.#state = s;
    for (const fn of this.#listeners) fn();
  }
}

export const connection = new Connection();

/**
 * PUT a JSON body (a write: needs a token with the permission, e.g. an operator's). Throws
 * ApiError with the API's message when refused.
 */
export async function putJson(path: string, body: unknown): Promise<void> {
  const res = await fetch(base + path, {
    method: 'PUT',
    headers: { ...auth.headers('application/json'), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw apiError(res, text);
}

/** How often pages poll (ms). */
export const REFRESH_MS = 3000;
