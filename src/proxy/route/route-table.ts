/**
 * The compiled routing table of one Service as seen by clients in one namespace (GAMMA mesh
 * model). Built once per config change by {@link compileRoutes}: routes that attach to the
 * Service are flattened into one list of matches sorted by Gateway API precedence, so a
 * request is routed by walking that list and taking the first match.
 */
import type { HeaderMap, MeshRequest, MeshResponse } from '../core/dispatch.ts';
import type { GRPCRoute, HTTPRoute, HTTPRouteFilter } from '../../config/resources.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import {
  applyRequestHeaderModifier,
  applyResponseHeaderModifier,
  applyUrlRewrite,
  compileFilter,
  type CompiledFilter,
  type CompiledMirror,
  type CompiledRedirect,
} from './filters.ts';
import {
  compileFullMatch,
  compileHeaderMatch,
  compileQueryMatch,
  headersMatch,
  normalizePrefix,
  parseQuery,
  pathOnly,
  prefixMatches,
  queryMatches,
  type HeaderMatch,
  type QueryMatch,
} from './matchers.ts';
import { WeightedBackends, type BackendTarget } from './weighted-backends.ts';

export { parseAuthority, type AuthorityTarget } from './authority.ts';
export { WeightedBackends, type BackendTarget } from './weighted-backends.ts';

export type Route = HTTPRoute | GRPCRoute;
type Retry = NonNullable<HTTPRoute['spec']['rules'][number]['retry']>;

/** What the proxy needs to forward a request that matched one rule. Built at config time, shared by requests. */
export interface MatchedRule {
  readonly kind: 'HTTPRoute' | 'GRPCRoute';
  /** `<namespace>/<route-name>`, the bounded `route` metric label. */
  readonly routeLabel: string;
  /** The rule's `name`, or `#<index>` when unnamed (`#` cannot collide with a real name). */
  readonly ruleName: string;
  readonly ruleIndex: number;
  /** True when the route is a consumer route (the client's namespace, not the Service's). */
  readonly consumer: boolean;
  /** Every filter in config order. */
  readonly filters: readonly CompiledFilter[];
  /** The RequestRedirect filter, if any: answer with `buildRedirect` instead of forwarding. */
  readonly redirect: CompiledRedirect | undefined;
  /** RequestMirror filters; decide each with `mirrorTarget`. */
  readonly mirrors: readonly CompiledMirror[];
  /** Milliseconds; `request` covers all tries, `backendRequest` one try. */
  readonly timeouts: { readonly request?: number; readonly backendRequest?: number };
  readonly retry: Retry | undefined;
  readonly backends: WeightedBackends;
  /**
   * The PathPrefix value that matched (as configured), for ReplacePrefixMatch. For an Exact
   * path match it is the exact value; for a RegularExpression match (and gRPC) undefined.
   */
  readonly matchedPrefix: string | undefined;
}

/** The request fields routing reads. A MeshRequest fits. */
export interface RouteRequest {
  method: string;
  /** Path with query, as received. */
  path: string;
  headers: HeaderMap;
  /** gRPC request? When absent, decided from `content-type: application/grpc*`. */
  grpc?: boolean;
}

const enum PathKind {
  Exact = 0,
  Prefix = 1,
  Regex = 2,
}

interface HttpEntry {
  readonly consumer: boolean;
  readonly pathKind: PathKind;
  /** Sort key: length of the normalised prefix. */
  readonly prefixLength: number;
  readonly pathValue: string;
  readonly pathRe: RegExp | undefined;
  readonly method: string | undefined;
  readonly headers: readonly HeaderMatch[];
  readonly query: readonly QueryMatch[];
  readonly created: number;
  readonly routeKey: string;
  readonly ruleIndex: number;
  readonly matchIndex: number;
  readonly result: MatchedRule;
}

const enum GrpcKind {
  ExactServiceMethod = 0,
  ExactService = 1,
  ExactMethod = 2,
  Regex = 3,
  Any = 4,
}

interface GrpcEntry {
  readonly consumer: boolean;
  readonly kind: GrpcKind;
  readonly service: RegExp | string | undefined;
  readonly method: RegExp | string | undefined;
  readonly headers: readonly HeaderMatch[];
  readonly created: number;
  readonly routeKey: string;
  readonly ruleIndex: number;
  readonly matchIndex: number;
  readonly result: MatchedRule;
}

/** Matches sorted by precedence; `match` returns the first that holds. */
export class RouteTable {
  /** Query names any rule matches on; empty means the query string is never parsed. */
  private readonly queryNames: ReadonlySet<string>;

  /** @internal Use {@link compileRoutes}. */
  constructor(
    private readonly http: readonly HttpEntry[],
    private readonly grpcEntries: readonly GrpcEntry[],
  ) {
    const names = new Set<string>();
    for (const e of http) for (const q of e.query) names.add(q.name);
    this.queryNames = names;
  }

  /** Route labels of every attached route, sorted (for diagnostics). */
  get routes(): string[] {
    const s = new Set<string>();
    for (const e of this.http) s.add(e.routeKey);
    for (const e of this.grpcEntries) s.add(e.routeKey);
    return [...s].sort();
  }

  /**
   * The rule a request goes to, or undefined when routes are attached but none matched (the
   * caller answers 404, see {@link noRouteError}). gRPC requests try GRPCRoute matches first,
   * then HTTPRoute matches; other requests see only HTTPRoute matches.
   */
  match(req: RouteRequest): MatchedRule | undefined {
    const grpc = req.grpc ?? isGrpcContentType(req.headers['content-type']);
    if (grpc && this.grpcEntries.length > 0) {
      const r = this.matchGrpc(req);
      if (r) return r;
    }
    return this.matchHttp(req);
  }

  private matchHttp(req: RouteRequest): MatchedRule | undefined {
    const entries = this.http;
    if (entries.length === 0) return undefined;
    const path = pathOnly(req.path);
    let query: Map<string, string> | undefined;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      switch (e.pathKind) {
        case PathKind.Exact:
          if (path !== e.pathValue) continue;
          break;
        case PathKind.Prefix:
          if (!prefixMatches(e.pathValue, path)) continue;
          break;
        case PathKind.Regex:
          if (!e.pathRe!.test(path)) continue;
          break;
      }
      if (e.method !== undefined && e.method !== req.method) continue;
      if (e.headers.length > 0 && !headersMatch(e.headers, req.headers)) continue;
      if (e.query.length > 0) {
        query ??= parseQuery(req.path, this.queryNames);
        if (!queryMatches(e.query, query)) continue;
      }
      return e.result;
    }
    return undefined;
  }

  private matchGrpc(req: RouteRequest): MatchedRule | undefined {
    const path = req.path;
    // `/<service>/<method>`; anything else can only match entries without a method match.
    const slash = path.charCodeAt(0) === 47 ? path.indexOf('/', 1) : -1;
    const service = slash > 1 ? path.slice(1, slash) : undefined;
    const method = slash > 1 && slash < path.length - 1 ? path.slice(slash + 1) : undefined;
    const entries = this.grpcEntries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (e.kind !== GrpcKind.Any) {
        if (service === undefined || method === undefined) continue;
        if (!partMatches(e.service, service) || !partMatches(e.method, method)) continue;
      }
      if (e.headers.length > 0 && !headersMatch(e.headers, req.headers)) continue;
      return e.result;
    }
    return undefined;
  }
}

function partMatches(m: RegExp | string | undefined, v: string): boolean {
  if (m === undefined) return true;
  return typeof m === 'string' ? m === v : m.test(v);
}

function isGrpcContentType(v: string | string[] | undefined): boolean {
  const s = Array.isArray(v) ? v[0] : v;
  return s !== undefined && s.startsWith('application/grpc');
}

/** Does `route` attach to `service` (GAMMA parentRef: kind Service, namespace defaulting to the route's)? */
function attaches(route: Route, service: { name: string; namespace: string; port?: number }): boolean {
  for (const ref of route.spec.parentRefs) {
    if ((ref.kind ?? 'Service') !== 'Service') continue;
    if (ref.name !== service.name) continue;
    if ((ref.namespace ?? route.metadata.namespace) !== service.namespace) continue;
    if (ref.port !== undefined && service.port !== undefined && ref.port !== service.port) continue;
    return true;
  }
  return false;
}

function createdAt(route: Route): number {
  const t = route.metadata.creationTimestamp;
  if (t === undefined) return Infinity;
  const ms = Date.parse(t);
  // Missing or unparsable: as if created last, so it never outranks a dated route and ties
  // with other undated ones (then name order decides).
  return Number.isNaN(ms) ? Infinity : ms;
}

interface RuleCommon {
  filters?: unknown[];
  backendRefs?: {
    name: string;
    namespace?: string;
    port?: number;
    weight?: number;
    filters?: unknown[];
  }[];
  timeouts?: { request?: number; backendRequest?: number };
  retry?: Retry;
  name?: string;
}

function compileRule(
  kind: 'HTTPRoute' | 'GRPCRoute',
  route: Route,
  rule: RuleCommon,
  ruleIndex: number,
  consumer: boolean,
): Omit<MatchedRule, 'matchedPrefix'> {
  const ns = route.metadata.namespace;
  const filters = Object.freeze((rule.filters ?? []).map((f) => compileFilter(f as HTTPRouteFilter, ns)));
  let redirect: CompiledRedirect | undefined;
  const mirrors: CompiledMirror[] = [];
  for (const f of filters) {
    if (f.type === 'RequestRedirect') redirect = f.redirect;
    else if (f.type === 'RequestMirror') mirrors.push(f.mirror);
  }
  const backends = new WeightedBackends(
    (rule.backendRefs ?? []).map((b): BackendTarget =>
      Object.freeze({
        name: b.name,
        namespace: b.namespace ?? ns,
        port: b.port,
        weight: b.weight ?? 1,
        ...(b.filters?.length
          ? { filters: Object.freeze(b.filters.map((f) => compileFilter(f as HTTPRouteFilter, ns))) }
          : {}),
      }),
    ),
  );
  return {
    kind,
    routeLabel: `${ns}/${route.metadata.name}`,
    ruleName: rule.name ?? `#${ruleIndex}`,
    ruleIndex,
    consumer,
    filters,
    redirect,
    mirrors: Object.freeze(mirrors),
    timeouts: Object.freeze({ ...(rule.timeouts ?? {}) }),
    retry: rule.retry,
    backends,
  };
}

function compareCommon(
  a: { consumer: boolean; created: number; routeKey: string; ruleIndex: number; matchIndex: number },
  b: typeof a,
): number {
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  if (a.routeKey !== b.routeKey) return a.routeKey < b.routeKey ? -1 : 1;
  if (a.ruleIndex !== b.ruleIndex) return a.ruleIndex - b.ruleIndex;
  return a.matchIndex - b.matchIndex;
}

/**
 * Precedence, first difference wins: consumer route before producer route; Exact path before
 * PathPrefix before RegularExpression; longer prefix; with method; more header matches; more
 * query matches; older route; `namespace/name` alphabetical; rule order; match order.
 */
function compareHttp(a: HttpEntry, b: HttpEntry): number {
  if (a.consumer !== b.consumer) return a.consumer ? -1 : 1;
  if (a.pathKind !== b.pathKind) return a.pathKind - b.pathKind;
  if (a.pathKind === PathKind.Prefix && a.prefixLength !== b.prefixLength)
    return b.prefixLength - a.prefixLength;
  if ((a.method !== undefined) !== (b.method !== undefined)) return a.method !== undefined ? -1 : 1;
  if (a.headers.length !== b.headers.length) return b.headers.length - a.headers.length;
  if (a.query.length !== b.query.length) return b.query.length - a.query.length;
  return compareCommon(a, b);
}

/**
 * gRPC precedence: consumer first; Exact service+method, Exact service only, Exact method
 * only, RegularExpression, no method match; more header matches; then as HTTP.
 */
function compareGrpc(a: GrpcEntry, b: GrpcEntry): number {
  if (a.consumer !== b.consumer) return a.consumer ? -1 : 1;
  if (a.kind !== b.kind) return a.kind - b.kind;
  if (a.headers.length !== b.headers.length) return b.headers.length - a.headers.length;
  return compareCommon(a, b);
}

function httpEntries(route: HTTPRoute, consumer: boolean, out: HttpEntry[]): void {
  const created = createdAt(route);
  const routeKey = `${route.metadata.namespace}/${route.metadata.name}`;
  route.spec.rules.forEach((rule, ruleIndex) => {
    const common = compileRule('HTTPRoute', route, rule, ruleIndex, consumer);
    // No matches: one match-all (`/` prefix), as Gateway API.
    const matches = rule.matches?.length ? rule.matches : [{}];
    matches.forEach((m, matchIndex) => {
      const type = m.path?.type ?? 'PathPrefix';
      const value = m.path?.value ?? '/';
      const pathKind =
        type === 'Exact' ? PathKind.Exact : type === 'PathPrefix' ? PathKind.Prefix : PathKind.Regex;
      const pathValue = pathKind === PathKind.Prefix ? normalizePrefix(value) : value;
      const matchedPrefix = pathKind === PathKind.Regex ? undefined : value;
      out.push({
        consumer,
        pathKind,
        prefixLength: pathValue.length,
        pathValue,
        pathRe: pathKind === PathKind.Regex ? compileFullMatch(value) : undefined,
        method: m.method,
        headers: Object.freeze((m.headers ?? []).map(compileHeaderMatch)),
        query: Object.freeze((m.queryParams ?? []).map(compileQueryMatch)),
        created,
        routeKey,
        ruleIndex,
        matchIndex,
        result: Object.freeze({ ...common, matchedPrefix }),
      });
    });
  });
}

function grpcEntries(route: GRPCRoute, consumer: boolean, out: GrpcEntry[]): void {
  const created = createdAt(route);
  const routeKey = `${route.metadata.namespace}/${route.metadata.name}`;
  route.spec.rules.forEach((rule, ruleIndex) => {
    const common = compileRule('GRPCRoute', route, rule, ruleIndex, consumer);
    const result: MatchedRule = Object.freeze({ ...common, matchedPrefix: undefined });
    const matches = rule.matches?.length ? rule.matches : [{}];
    matches.forEach((m, matchIndex) => {
      const mm = m.method;
      const hasService = mm?.service !== undefined && mm.service !== '';
      const hasMethod = mm?.method !== undefined && mm.method !== '';
      let kind: GrpcKind;
      let service: RegExp | string | undefined;
      let method: RegExp | string | undefined;
      if (!mm || (!hasService && !hasMethod)) kind = GrpcKind.Any;
      else if (mm.type === 'RegularExpression') {
        kind = GrpcKind.Regex;
        service = hasService ? compileFullMatch(mm.service!) : undefined;
        method = hasMethod ? compileFullMatch(mm.method!) : undefined;
      } else {
        kind =
          hasService && hasMethod
            ? GrpcKind.ExactServiceMethod
            : hasService
              ? GrpcKind.ExactService
              : GrpcKind.ExactMethod;
        service = hasService ? mm.service : undefined;
        method = hasMethod ? mm.method : undefined;
      }
      out.push({
        consumer,
        kind,
        service,
        method,
        headers: Object.freeze((m.headers ?? []).map(compileHeaderMatch)),
        created,
        routeKey,
        ruleIndex,
        matchIndex,
        result,
      });
    });
  });
}

/**
 * Compile the routes that attach to `service` for clients in `clientNamespace`.
 *
 * A route attaches when one of its parentRefs names the Service (kind Service; namespace
 * defaults to the route's; a parentRef port, when both it and `service.port` are given, must
 * be equal). Producer routes (in the Service's namespace) apply to every client; consumer
 * routes (in another namespace) only to clients of that namespace, and they take precedence
 * over producer routes: every consumer match ranks above every producer match, and a request
 * that matches no consumer rule still falls through to the producer rules. `hostnames` is
 * ignored, as GAMMA says for Service parents.
 *
 * Returns undefined when no route attaches: the caller forwards to the Service as it is.
 */
export function compileRoutes(
  service: { name: string; namespace: string; port?: number },
  routes: readonly Route[],
  clientNamespace: string,
): RouteTable | undefined {
  const http: HttpEntry[] = [];
  const grpc: GrpcEntry[] = [];
  let attached = false;
  for (const route of routes) {
    const ns = route.metadata.namespace;
    const producer = ns === service.namespace;
    if (!producer && ns !== clientNamespace) continue;
    if (!attaches(route, service)) continue;
    attached = true;
    if (route.kind === 'HTTPRoute') httpEntries(route, !producer, http);
    else grpcEntries(route, !producer, grpc);
  }
  if (!attached) return undefined;
  http.sort(compareHttp);
  grpc.sort(compareGrpc);
  return new RouteTable(Object.freeze(http), Object.freeze(grpc));
}

/** The error for "routes attached, none matched": 404 / gRPC UNIMPLEMENTED. */
export function noRouteError(service: string, req: Pick<RouteRequest, 'method' | 'path'>): HexmeshError {
  return new HexmeshError(
    'HEXMESH_ERR_NO_ROUTE',
    `no route of ${service} matches ${req.method} ${pathOnly(req.path)}`,
    {
      context: { service },
    },
  );
}

/**
 * The error for a matched rule with no backend to send to (no backendRefs, or all weights 0):
 * HTTP 500 as Gateway API says for HTTPRoute, and gRPC UNAVAILABLE (14) as it says for
 * GRPCRoute (carried in `context.grpcStatus`, which the error-response module honours).
 */
export function noBackendError(rule: MatchedRule): HexmeshError {
  return new HexmeshError(
    'HEXMESH_ERR_INTERNAL',
    `route ${rule.routeLabel} rule ${rule.ruleName} has no backend with a non-zero weight`,
    { context: { route: rule.routeLabel, rule: rule.ruleName, grpcStatus: 14 } },
  );
}

/**
 * Apply a rule's request-side filters in config order (RequestHeaderModifier, URLRewrite).
 * RequestRedirect and RequestMirror are not applied here: check `rule.redirect` first, and
 * send mirrors from the proxy assembly.
 */
export function applyRequestFilters(rule: MatchedRule, req: MeshRequest): MeshRequest {
  let out = req;
  for (const f of rule.filters) {
    if (f.type === 'RequestHeaderModifier') out = applyRequestHeaderModifier(out, f.modifier);
    else if (f.type === 'URLRewrite') out = applyUrlRewrite(out, f.rewrite, rule.matchedPrefix);
  }
  return out;
}

/** Apply a rule's ResponseHeaderModifier filters in config order. */
export function applyResponseFilters(rule: MatchedRule, res: MeshResponse): MeshResponse {
  let out = res;
  for (const f of rule.filters)
    if (f.type === 'ResponseHeaderModifier') out = applyResponseHeaderModifier(out, f.modifier);
  return out;
}

/** Apply a backendRef's own request header modifiers (after the rule's filters). */
export function applyBackendRequestFilters(b: BackendTarget, req: MeshRequest): MeshRequest {
  let out = req;
  for (const f of b.filters ?? [])
    if (f.type === 'RequestHeaderModifier') out = applyRequestHeaderModifier(out, f.modifier);
  return out;
}

/** Apply a backendRef's own response header modifiers (before the rule's). */
export function applyBackendResponseFilters(b: BackendTarget, res: MeshResponse): MeshResponse {
  let out = res;
  for (const f of b.filters ?? [])
    if (f.type === 'ResponseHeaderModifier') out = applyResponseHeaderModifier(out, f.modifier);
  return out;
}
