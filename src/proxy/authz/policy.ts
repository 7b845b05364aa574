/**
 * AuthorizationPolicy compiled into matchers, once per config (Envoy's RBAC filter
 * config → per-request matcher). Semantics as Istio: inside a rule, `from`, `to` and
 * `when` are ANDed; entries of `from` (and of `to`) are ORed; fields of one source or
 * operation are ANDed; `notX` excludes; an absent field is not checked.
 */
import type { AuthorizationPolicy, AuthorizationRule } from '../../config/resources.ts';
import type { AuthzAttributes } from './attributes.ts';
import { normalizeHost, type NormalizedHost } from '../route/authority.ts';
import { compileIpBlocks } from './ip-match.ts';
import { principalPattern, UNAUTHENTICATED } from './peer.ts';
import { compileAny, compilePattern, type StringMatcher } from './string-match.ts';

type Pred = (a: AuthzAttributes) => boolean;

export type PolicyAction = 'ALLOW' | 'DENY' | 'AUDIT';

/** One compiled policy. */
export interface CompiledPolicy {
  /** `<namespace>/<name>`, as shown in responses and metrics. */
  readonly name: string;
  readonly action: PolicyAction;
  /** True if any rule matches the request. */
  readonly matches: Pred;
  /**
   * True if any rule matches an opaque TCP connection, read as Istio reads a rule for TCP:
   * only principals, namespaces, ipBlocks, ports and the `source.*` / `destination.port`
   * conditions can be known. A rule with HTTP-only fields (methods, paths, hosts, request
   * principals, header or claim conditions) never matches in an ALLOW policy, and matches
   * on its other fields in DENY and AUDIT ones: either way the policy is stricter, never
   * looser, than for HTTP.
   */
  readonly matchesConnection: Pred;
}

/** `when` keys a connection has (the rest are HTTP-only). */
const L4_KEYS = new Set([
  'source.ip',
  'remote.ip',
  'source.principal',
  'source.namespace',
  'destination.port',
]);
const L7_SOURCE = ['requestPrincipals', 'notRequestPrincipals'] as const;
const L7_OPERATION = ['methods', 'notMethods', 'paths', 'notPaths', 'hosts', 'notHosts'] as const;

function hasHttpOnlyFields(rule: AuthorizationRule): boolean {
  return (
    (rule.from ?? []).some((f) => L7_SOURCE.some((k) => f.source[k] !== undefined)) ||
    (rule.to ?? []).some((t) => L7_OPERATION.some((k) => t.operation[k] !== undefined)) ||
    (rule.when ?? []).some((c) => !L4_KEYS.has(c.key))
  );
}

/** The rule with its HTTP-only fields removed. */
function connectionRule(rule: AuthorizationRule): AuthorizationRule {
  const out: AuthorizationRule = {};
  if (rule.from)
    out.from = rule.from.map((f) => {
      const source = { ...f.source };
      for (const k of L7_SOURCE) delete source[k];
      return { source };
    });
  if (rule.to)
    out.to = rule.to.map((t) => {
      const operation = { ...t.operation };
      for (const k of L7_OPERATION) delete operation[k];
      return { operation };
    });
  if (rule.when) out.when = rule.when.filter((c) => L4_KEYS.has(c.key));
  return out;
}

/**
 * `namespace`: the workload's, in which a bare service name in `hosts` is read (default:
 * the policy's own; they differ only for a mesh-wide policy of the root namespace).
 */
export function compilePolicy(p: AuthorizationPolicy, namespace = p.metadata.namespace): CompiledPolicy {
  const action = p.spec.action;
  const matches = anyRule(p.spec.rules.map((r) => compileRule(r, namespace)));
  const matchesConnection = anyRule(
    p.spec.rules.map((r) =>
      !hasHttpOnlyFields(r)
        ? compileRule(r, namespace)
        : action === 'ALLOW'
          ? () => false
          : compileRule(connectionRule(r), namespace),
    ),
  );
  return { name: `${p.metadata.namespace}/${p.metadata.name}`, action, matches, matchesConnection };
}

function anyRule(rules: Pred[]): Pred {
  if (rules.length === 0) return () => false;
  return (a) => {
    for (const r of rules) if (r(a)) return true;
    return false;
  };
}

function compileRule(rule: AuthorizationRule, namespace: string): Pred {
  const preds: Pred[] = [];
  if (rule.from !== undefined) preds.push(anyOf(rule.from.map((f) => compileSource(f.source))));
  if (rule.to !== undefined) preds.push(anyOf(rule.to.map((t) => compileOperation(t.operation, namespace))));
  for (const c of rule.when ?? []) preds.push(compileCondition(c.key, c.values, c.notValues));
  return allOf(preds);
}

function anyOf(preds: Pred[]): Pred {
  if (preds.length === 1) return preds[0];
  return (a) => {
    for (const p of preds) if (p(a)) return true;
    return false;
  };
}

function allOf(preds: Pred[]): Pred {
  if (preds.length === 0) return () => true;
  if (preds.length === 1) return preds[0];
  return (a) => {
    for (const p of preds) if (!p(a)) return false;
    return true;
  };
}

/** Include/exclude pair over one attribute. */
function field<T>(
  preds: Pred[],
  get: (a: AuthzAttributes) => T,
  yes: ((v: T) => boolean) | undefined,
  no: ((v: T) => boolean) | undefined,
): void {
  if (yes) preds.push((a) => yes(get(a)));
  if (no) preds.push((a) => !no(get(a)));
}

/** Peer principals: an empty identity matches only the literal `unauthenticated`. */
function compilePrincipals(list: string[] | undefined): StringMatcher | undefined {
  if (list === undefined) return undefined;
  const anon = list.includes(UNAUTHENTICATED);
  const ids = compileAny(list.filter((p) => p !== UNAUTHENTICATED).map(principalPattern));
  return (peer) => (peer === '' ? anon : ids !== undefined && ids(peer));
}

function compileSource(s: NonNullable<AuthorizationRule['from']>[number]['source']): Pred {
  const preds: Pred[] = [];
  field(preds, (a) => a.peer, compilePrincipals(s.principals), compilePrincipals(s.notPrincipals));
  field(
    preds,
    (a) => a.peerNamespace,
    nonEmpty(compileAny(s.namespaces)),
    nonEmpty(compileAny(s.notNamespaces)),
  );
  field(preds, (a) => a.sourceIp, compileIpBlocks(s.ipBlocks), compileIpBlocks(s.notIpBlocks));
  field(
    preds,
    (a) => a.auth?.principal ?? '',
    nonEmpty(compileAny(s.requestPrincipals)),
    nonEmpty(compileAny(s.notRequestPrincipals)),
  );
  return allOf(preds);
}

/** An empty value (no namespace, no token) matches no pattern, `*` included. */
function nonEmpty(m: StringMatcher | undefined): StringMatcher | undefined {
  return m && ((v) => v !== '' && m(v));
}

function compileOperation(
  o: NonNullable<AuthorizationRule['to']>[number]['operation'],
  namespace: string,
): Pred {
  const preds: Pred[] = [];
  const methods = (l: string[] | undefined) => l && new Set(l);
  const m = methods(o.methods);
  const nm = methods(o.notMethods);
  field(preds, (a) => a.method, m && ((v) => m.has(v)), nm && ((v) => nm.has(v)));
  // Paths match case-sensitively on the normalised path (as Istio).
  field(preds, (a) => a.path, compileAny(o.paths), compileAny(o.notPaths));
  const ports = o.ports && new Set(o.ports);
  const notPorts = o.notPorts && new Set(o.notPorts);
  field(preds, (a) => a.port, ports && ((p) => ports.has(p)), notPorts && ((p) => notPorts.has(p)));
  const hostOf = (a: AuthzAttributes) => (a.hostName ??= normalizeHost(a.host, namespace));
  field(preds, hostOf, hostMatcher(o.hosts, namespace), hostMatcher(o.notHosts, namespace));
  return allOf(preds);
}

type HostMatcher = (h: NormalizedHost) => boolean;

/**
 * `hosts` entries read as routing reads a Host (route/authority.ts normalizeHost): `svc`,
 * `svc.`, `Svc.NS`, `svc:80` and `svc.ns.svc.cluster.local.` name one service, so an entry
 * matches every spelling of it. A port in the entry must be the request's; without one,
 * any port. Wildcards (`*.example.com`, `api*`) match the host or the service's full name.
 */
function hostMatcher(list: string[] | undefined, namespace: string): HostMatcher | undefined {
  if (list === undefined) return undefined;
  const ms = list.map((p) => compileHostPattern(p, namespace));
  if (ms.length === 1) return ms[0];
  return (h) => {
    for (const m of ms) if (m(h)) return true;
    return false;
  };
}

function compileHostPattern(pattern: string, namespace: string): HostMatcher {
  if (pattern.includes('*')) {
    const m = compilePattern(pattern.toLowerCase(), true);
    return (h) => m(h.host) || m(h.fqdn) || (h.port !== undefined && m(`${h.host}:${h.port}`));
  }
  const want = normalizeHost(pattern, namespace);
  return (h) => h.fqdn === want.fqdn && (want.port === undefined || want.port === h.port);
}

const HEADER_KEY = /^request\.headers\[(.+)\]$/;
const CLAIM_PART = /\[([^[\]]+)\]/g;

/**
 * A `when` condition. `values`: the attribute has a value matching one of them;
 * `notValues`: no value matches (a missing attribute satisfies `notValues` only).
 */
function compileCondition(key: string, values: string[] | undefined, notValues: string[] | undefined): Pred {
  if (key === 'source.ip' || key === 'remote.ip') {
    const yes = compileIpBlocks(values);
    const no = compileIpBlocks(notValues);
    return (a) => (!yes || yes(a.sourceIp)) && (!no || !no(a.sourceIp));
  }
  const get = attributeGetter(key);
  const yes = compileAny(values);
  const no = compileAny(notValues);
  return (a) => {
    const v = get(a);
    if (yes && !someMatch(v, yes)) return false;
    if (no && someMatch(v, no)) return false;
    return true;
  };
}

type Value = string | readonly unknown[] | undefined;

function someMatch(v: Value, m: StringMatcher): boolean {
  if (v === undefined) return false;
  if (typeof v === 'string') return m(v);
  for (const x of v) if (scalar(x) !== undefined && m(scalar(x)!)) return true;
  return false;
}

function scalar(x: unknown): string | undefined {
  if (typeof x === 'string') return x;
  if (typeof x === 'number' || typeof x === 'boolean') return String(x);
  return undefined;
}

function attributeGetter(key: string): (a: AuthzAttributes) => Value {
  const h = HEADER_KEY.exec(key);
  if (h) {
    const name = h[1].toLowerCase();
    return (a) => a.headers[name];
  }
  if (key.startsWith('request.auth.claims')) {
    const path = [...key.slice('request.auth.claims'.length).matchAll(CLAIM_PART)].map((m) => m[1]);
    return (a) => claimValue(a.auth?.claims, path);
  }
  switch (key) {
    case 'source.principal':
      return (a) => a.peer || undefined;
    case 'source.namespace':
      return (a) => a.peerNamespace || undefined;
    case 'request.auth.principal':
      return (a) => a.auth?.principal;
    case 'request.auth.audiences':
      return (a) => claimValue(a.auth?.claims, ['aud']);
    case 'request.auth.presenter':
      return (a) => claimValue(a.auth?.claims, ['azp']);
    case 'destination.port':
      return (a) => String(a.port);
  }
  // The schema admits no other key.
  throw new Error(`unknown condition key ${key}`);
}

function claimValue(claims: Readonly<Record<string, unknown>> | undefined, path: string[]): Value {
  let v: unknown = claims;
  for (const p of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  if (Array.isArray(v)) return v;
  return scalar(v);
}
