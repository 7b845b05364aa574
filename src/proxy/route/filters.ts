/**
 * HTTPRoute/GRPCRoute filters: compiled once from validated config, then applied per request
 * by small pure functions. None of them mutates its input; each returns a new request or
 * response (sharing the body stream and context) so a mirror can still see the original.
 */
import type { HeaderMap, MeshRequest, MeshResponse } from '../core/dispatch.ts';
import type { HTTPRouteFilter } from '../../config/resources.ts';
import { normalizePrefix } from './matchers.ts';
import type { BackendTarget } from './weighted-backends.ts';

/** Header edits with names lower-cased, applied remove → set → add (Envoy's order). */
export interface CompiledHeaderModifier {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

export type CompiledPathModifier =
  | { readonly type: 'ReplaceFullPath'; readonly value: string }
  /** `value` is the replacement with trailing slashes dropped (`/` → ``). */
  | { readonly type: 'ReplacePrefixMatch'; readonly value: string };

export interface CompiledUrlRewrite {
  readonly hostname: string | undefined;
  readonly path: CompiledPathModifier | undefined;
}

export interface CompiledRedirect {
  readonly scheme: 'http' | 'https' | undefined;
  readonly hostname: string | undefined;
  readonly port: number | undefined;
  readonly path: CompiledPathModifier | undefined;
  readonly statusCode: number;
}

export interface CompiledMirror {
  readonly backend: BackendTarget;
  /** Mirror when `random() * denominator < numerator`. */
  readonly numerator: number;
  readonly denominator: number;
}

export type CompiledFilter =
  | { readonly type: 'RequestHeaderModifier'; readonly modifier: CompiledHeaderModifier }
  | { readonly type: 'ResponseHeaderModifier'; readonly modifier: CompiledHeaderModifier }
  | { readonly type: 'URLRewrite'; readonly rewrite: CompiledUrlRewrite }
  | { readonly type: 'RequestRedirect'; readonly redirect: CompiledRedirect }
  | { readonly type: 'RequestMirror'; readonly mirror: CompiledMirror };

type HeaderModifierConfig = {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
};

function compileHeaderModifier(m: HeaderModifierConfig): CompiledHeaderModifier {
  return Object.freeze({
    set: Object.freeze((m.set ?? []).map((h) => Object.freeze([h.name.toLowerCase(), h.value] as const))),
    add: Object.freeze((m.add ?? []).map((h) => Object.freeze([h.name.toLowerCase(), h.value] as const))),
    remove: Object.freeze((m.remove ?? []).map((n) => n.toLowerCase())),
  });
}

function compilePathModifier(
  p:
    | {
        type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
        replaceFullPath?: string;
        replacePrefixMatch?: string;
      }
    | undefined,
): CompiledPathModifier | undefined {
  if (!p) return undefined;
  if (p.type === 'ReplaceFullPath') return Object.freeze({ type: p.type, value: p.replaceFullPath ?? '/' });
  return Object.freeze({ type: p.type, value: normalizePrefix(p.replacePrefixMatch ?? '/') });
}

/**
 * Compile one validated filter. `namespace` is the route's, the default for a mirror's
 * backendRef. GRPCRoute filters are a subset of these and compile the same way.
 */
export function compileFilter(f: HTTPRouteFilter, namespace: string): CompiledFilter {
  switch (f.type) {
    case 'RequestHeaderModifier':
      return Object.freeze({ type: f.type, modifier: compileHeaderModifier(f.requestHeaderModifier) });
    case 'ResponseHeaderModifier':
      return Object.freeze({ type: f.type, modifier: compileHeaderModifier(f.responseHeaderModifier) });
    case 'URLRewrite':
      return Object.freeze({
        type: f.type,
        rewrite: Object.freeze({
          hostname: f.urlRewrite.hostname,
          path: compilePathModifier(f.urlRewrite.path),
        }),
      });
    case 'RequestRedirect': {
      const r = f.requestRedirect;
      return Object.freeze({
        type: f.type,
        redirect: Object.freeze({
          scheme: r.scheme,
          hostname: r.hostname,
          port: r.port,
          path: compilePathModifier(r.path),
          statusCode: r.statusCode ?? 302,
        }),
      });
    }
    case 'RequestMirror': {
      const m = f.requestMirror;
      let numerator = 100;
      let denominator = 100;
      if (m.percent !== undefined) numerator = m.percent;
      else if (m.fraction) {
        numerator = m.fraction.numerator;
        denominator = m.fraction.denominator ?? 100;
      }
      const backend: BackendTarget = Object.freeze({
        name: m.backendRef.name,
        namespace: m.backendRef.namespace ?? namespace,
        port: m.backendRef.port,
        weight: 1,
      });
      return Object.freeze({ type: f.type, mirror: Object.freeze({ backend, numerator, denominator }) });
    }
  }
}

/** Apply a header modifier to a copy of `headers`: remove, then set (replace), then add (append). */
export function modifyHeaders(headers: HeaderMap, m: CompiledHeaderModifier): HeaderMap {
  const out: HeaderMap = { ...headers };
  for (const name of m.remove) delete out[name];
  for (const [name, value] of m.set) out[name] = value;
  for (const [name, value] of m.add) {
    const cur = out[name];
    // Gateway API: add "appends to any existing values"; a list is sent as repeated lines.
    out[name] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value];
  }
  return out;
}

/** RequestHeaderModifier. */
export function applyRequestHeaderModifier(req: MeshRequest, m: CompiledHeaderModifier): MeshRequest {
  return { ...req, headers: modifyHeaders(req.headers, m) };
}

/** ResponseHeaderModifier. */
export function applyResponseHeaderModifier(res: MeshResponse, m: CompiledHeaderModifier): MeshResponse {
  return { ...res, headers: modifyHeaders(res.headers, m) };
}

/**
 * Apply a path modifier to `path` (which may carry a query string; the query is kept).
 *
 * ReplacePrefixMatch is element-wise, as the Gateway API table: with prefix `/foo` and
 * replacement `/bar`, `/foo/x` → `/bar/x`, `/foo` → `/bar`, `/foo/` → `/bar/`; replacement `/`
 * gives `/foo/x` → `/x` and `/foo` → `/`. A trailing slash on either value is ignored. With the
 * catch-all prefix `/`, `/` → `/bar` and `/x` → `/bar/x`. `matchedPrefix` undefined (the rule
 * matched by regex) leaves the path as it is.
 */
export function rewritePath(
  path: string,
  m: CompiledPathModifier,
  matchedPrefix: string | undefined,
): string {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  const query = q < 0 ? '' : path.slice(q);
  if (m.type === 'ReplaceFullPath') return m.value + query;
  if (matchedPrefix === undefined) return path;
  const prefix = normalizePrefix(matchedPrefix);
  let rest = p.slice(prefix.length);
  // Catch-all prefix `/`: the path `/` itself is "the prefix", so nothing remains.
  if (prefix === '' && rest === '/') rest = '';
  const out = m.value + rest;
  return (out === '' ? '/' : out) + query;
}

/** URLRewrite: hostname replaces the authority (and a `host` header if one is carried); path per {@link rewritePath}. */
export function applyUrlRewrite(
  req: MeshRequest,
  rewrite: CompiledUrlRewrite,
  matchedPrefix: string | undefined,
): MeshRequest {
  const out: MeshRequest = { ...req };
  if (rewrite.hostname !== undefined) {
    out.authority = rewrite.hostname;
    if (req.headers.host !== undefined) out.headers = { ...req.headers, host: rewrite.hostname };
  }
  if (rewrite.path) out.path = rewritePath(req.path, rewrite.path, matchedPrefix);
  return out;
}

/** Split `host[:port]` / `[v6]:port`; the host keeps IPv6 brackets. */
function splitAuthority(authority: string): { host: string; port: number | undefined } {
  const close = authority.startsWith('[') ? authority.indexOf(']') : -1;
  const colon = authority.lastIndexOf(':');
  if (colon > close && colon >= 0) {
    const port = Number(authority.slice(colon + 1));
    if (Number.isInteger(port) && port > 0) return { host: authority.slice(0, colon), port };
    return { host: authority.slice(0, colon), port: undefined };
  }
  return { host: authority, port: undefined };
}

const DEFAULT_PORT: Record<string, number> = { http: 80, https: 443 };

/**
 * The Location a RequestRedirect sends, per Gateway API: scheme defaults to the request's
 * (`requestScheme`); hostname to the request's host; port to the redirect's port, else the
 * well-known port of an explicit scheme, else the port the request was addressed to; a port
 * that is the default for the scheme is left out. The path is modified as {@link rewritePath}
 * and the query string kept.
 */
export function redirectLocation(
  req: Pick<MeshRequest, 'authority' | 'path'>,
  r: CompiledRedirect,
  matchedPrefix: string | undefined,
  requestScheme: 'http' | 'https' = 'http',
): string {
  const scheme = r.scheme ?? requestScheme;
  const orig = splitAuthority(req.authority);
  const host = r.hostname ?? orig.host;
  const port = r.port ?? (r.scheme !== undefined ? DEFAULT_PORT[r.scheme] : orig.port);
  const portPart = port === undefined || port === DEFAULT_PORT[scheme] ? '' : `:${port}`;
  const path = r.path ? rewritePath(req.path, r.path, matchedPrefix) : req.path;
  return `${scheme}://${host}${portPart}${path}`;
}

/** RequestRedirect: the response to send instead of forwarding (empty body). */
export function buildRedirect(
  req: Pick<MeshRequest, 'authority' | 'path'>,
  r: CompiledRedirect,
  matchedPrefix: string | undefined,
  requestScheme: 'http' | 'https' = 'http',
): MeshResponse {
  return {
    status: r.statusCode,
    headers: { location: redirectLocation(req, r, matchedPrefix, requestScheme), 'content-length': '0' },
    body: null,
  };
}

/**
 * RequestMirror: decide whether this request is mirrored (percent or fraction; neither set
 * means all requests). Returns the backend to mirror to, or undefined. The proxy assembly does
 * the fire-and-forget send and ignores its response; as Envoy, it appends `-shadow` to the
 * authority host of the mirrored copy (see {@link shadowAuthority}).
 */
export function mirrorTarget(
  m: CompiledMirror,
  random: () => number = Math.random,
): BackendTarget | undefined {
  if (m.numerator <= 0) return undefined;
  if (m.numerator >= m.denominator) return m.backend;
  return random() * m.denominator < m.numerator ? m.backend : undefined;
}

/**
 * Which requests of a percentage mirror get copied: exactly `numerator` of every `denominator`
 * in turn (error diffusion from a random start) rather than a coin per request. Any run of N
 * requests is mirrored N·p ± 1 times, where coins stray by √(N·p·(1−p)) — Gateway API's
 * conformance suite holds 500 requests to ±5% of the expected count. One per mirror filter and
 * config (state: the running remainder).
 */
export class MirrorSampler {
  readonly mirror: CompiledMirror;
  #acc: number;

  constructor(mirror: CompiledMirror, random: () => number = Math.random) {
    this.mirror = mirror;
    this.#acc = Math.floor(random() * mirror.denominator);
  }

  /** The mirror's backend if this request is to be copied, else undefined. */
  next(): BackendTarget | undefined {
    const m = this.mirror;
    if (m.numerator <= 0) return undefined;
    if (m.numerator >= m.denominator) return m.backend;
    this.#acc += m.numerator;
    if (this.#acc < m.denominator) return undefined;
    this.#acc -= m.denominator;
    return m.backend;
  }
}

/** `reviews:9080` → `reviews-shadow:9080` (Envoy's request_mirror_policies host suffix). */
export function shadowAuthority(authority: string): string {
  const { host, port } = splitAuthority(authority);
  return port === undefined ? `${host}-shadow` : `${host}-shadow:${port}`;
}
