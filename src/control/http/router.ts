/**
 * A small method + path router for the control-plane API. Patterns are split into
 * segments once, at registration: `:name` captures one segment, `*name` the rest of the
 * path (KV keys contain slashes). Matching compares segments; no regex per request.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Principal, RoutePermission } from '../auth/api-auth.ts';

export interface ApiRequest {
  readonly method: string;
  readonly path: string;
  /** Decoded path parameters. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly raw: IncomingMessage;
  /** Aborted when the client goes away or the server shuts down. */
  readonly signal: AbortSignal;
  /** The request body, bounded by the server's body limit (413 beyond it). */
  body(): Promise<Buffer>;
  /** Who is calling (docs/api-security.md); undefined when auth is off or the route is public and no credential came. */
  readonly principal?: Principal;
}

/** A JSON answer; `index` becomes the `X-Hexmesh-Index` header. */
export interface JsonResult {
  status?: number;
  json: unknown;
  index?: number;
  headers?: Record<string, string>;
}

/** A streamed answer (NDJSON watch): the handler owns the response from here on. */
export interface StreamResult {
  stream(res: ServerResponse): void;
}

export type ApiResult = JsonResult | StreamResult;
export type Handler = (req: ApiRequest) => Promise<ApiResult>;

interface Route {
  method: string;
  segments: readonly { literal?: string; param?: string; rest?: boolean }[];
  handler: Handler;
  permission: RoutePermission | undefined;
}

export type RouteMatch =
  | {
      kind: 'found';
      handler: Handler;
      params: Record<string, string>;
      /** Undefined: the route declared none, and is denied when auth is enforced. */
      permission: RoutePermission | undefined;
    }
  | { kind: 'method-not-allowed'; allowed: string[] }
  | { kind: 'not-found' };

export class Router {
  readonly #routes: Route[] = [];

  /**
   * Mount `handler`. `permission` is what a caller needs (src/control/auth/roles.ts); a
   * route without one is denied when auth is enforced, so every route must say.
   */
  /** `METHOD /pattern` of every route that declared no permission (a test keeps this empty). */
  undeclared(): string[] {
    return this.#routes
      .filter((r) => r.permission === undefined)
      .map(
        (r) =>
          `${r.method} /${r.segments.map((s) => s.literal ?? (s.rest ? `*${s.param}` : `:${s.param}`)).join('/')}`,
      );
  }

  add(method: string, pattern: string, handler: Handler, permission?: RoutePermission): this {
    const segments = pattern
      .split('/')
      .filter(Boolean)
      .map((s) =>
        s.startsWith(':')
          ? { param: s.slice(1) }
          : s.startsWith('*')
            ? { param: s.slice(1), rest: true }
            : { literal: s },
      );
    this.#routes.push({ method, segments, handler, permission });
    return this;
  }

  /** `parts` are the already percent-decoded path segments (a trailing slash gives a last ''). */
  match(method: string, parts: readonly string[]): RouteMatch {
    const allowed: string[] = [];
    // Fixed routes ignore a trailing slash; `*rest` routes see it.
    const trimmed = parts.length && parts[parts.length - 1] === '' ? parts.slice(0, -1) : parts;
    for (const r of this.#routes) {
      const rest = r.segments.length > 0 && r.segments[r.segments.length - 1].rest === true;
      const params = matchSegments(r.segments, rest ? parts : trimmed);
      if (!params) continue;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET'))
        return { kind: 'found', handler: r.handler, params, permission: r.permission };
      allowed.push(r.method);
    }
    return allowed.length ? { kind: 'method-not-allowed', allowed } : { kind: 'not-found' };
  }
}

function matchSegments(
  segments: Route['segments'],
  parts: readonly string[],
): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s.rest) {
      params[s.param!] = parts.slice(i).join('/');
      return params;
    }
    if (i >= parts.length) return undefined;
    if (s.literal !== undefined) {
      if (s.literal !== parts[i]) return undefined;
    } else params[s.param!] = parts[i];
  }
  return parts.length === segments.length ? params : undefined;
}
