/**
 * What `istioctl analyze` says about a set of resources that each validate on their own: the
 * mistakes only visible across them. Warnings, not errors — the set is applied as it is
 * (a backend may be deployed next) — but every one names what fails until it is fixed.
 * Shared by `hexmesh validate` (offline, over files) and `GET /v1/analyze` (the stored config,
 * shown by `hexmesh check`).
 */
import type { Resource } from './resources.ts';

type Route = Extract<Resource, { kind: 'HTTPRoute' | 'GRPCRoute' }>;
type Known = (namespace: string, name: string) => boolean;

export interface AnalyzeContext {
  /**
   * Whether a service exists (a Service resource or instances in the catalog); undefined when
   * the caller cannot know (files checked offline that declare no service): the checks that
   * need it are skipped.
   */
  serviceKnown?: Known;
}

/**
 * Every cross-resource problem: routes whose rules duplicate an earlier rule's match on the
 * same parent (only one of them gets those requests), rules whose backend weights sum to 0
 * (every request answered 500), and policies that select nothing (a targetRef naming no
 * Service, route or rule).
 */
export function analyzeResources(resources: readonly Resource[], ctx: AnalyzeContext = {}): string[] {
  return [
    ...shadowedRules(resources),
    ...zeroWeights(resources),
    ...policiesSelectingNothing(resources, ctx),
  ];
}

const isRoute = (r: Resource): r is Route => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute';
const id = (r: Resource) => `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`;
const ruleName = (rule: { name?: string }, i: number) => (rule.name ? `rule ${rule.name}` : `rules[${i}]`);

/** A match in one canonical form: a rule with no matches is `PathPrefix /` (Gateway API). */
function matchKeys(route: Route, rule: Route['spec']['rules'][number]): string[] {
  const hosts = [...(route.spec.hostnames ?? [])].sort().join(',');
  const matches: unknown[] = rule.matches?.length ? rule.matches : [{}];
  return matches.map((m) => {
    const x = { ...(m as Record<string, unknown>) };
    if (route.kind === 'HTTPRoute' && !x.path) x.path = { type: 'PathPrefix', value: '/' };
    const sortBy = (k: string) =>
      Array.isArray(x[k])
        ? [...(x[k] as { name: string }[])].sort((a, b) => a.name.localeCompare(b.name))
        : x[k];
    return JSON.stringify([route.kind, hosts, x.path, x.method, sortBy('headers'), sortBy('queryParams')]);
  });
}

/**
 * Two rules on one parent Service with the same match (path, method, headers, query, host):
 * the proxy sends those requests to one of them (as Gateway API: the older route, then the
 * name, then rule order), so the other never gets them.
 */
function shadowedRules(resources: readonly Resource[]): string[] {
  const warnings: string[] = [];
  // Gateway API's tie-break between routes: older creationTimestamp first, then name.
  const routes = resources.filter(isRoute).sort((a, b) => {
    const ta = String(a.metadata.creationTimestamp ?? '');
    const tb = String(b.metadata.creationTimestamp ?? '');
    return ta !== tb && ta && tb ? ta.localeCompare(tb) : a.metadata.name.localeCompare(b.metadata.name);
  });
  const first = new Map<string, string>();
  for (const r of routes)
    for (const p of r.spec.parentRefs) {
      const parent = `${p.namespace ?? r.metadata.namespace}/${p.name}`;
      (r.spec.rules as Route['spec']['rules']).forEach((rule, i) => {
        for (const key of new Set(matchKeys(r, rule))) {
          const k = `${parent} ${key}`;
          const where = `${id(r)} ${ruleName(rule, i)}`;
          const winner = first.get(k);
          if (winner === undefined) first.set(k, where);
          else if (winner !== where)
            warnings.push(
              `${where}: a match is the same as ${winner}'s on Service ${parent}, which takes those requests: this one never gets them`,
            );
        }
      });
    }
  return [...new Set(warnings)];
}

/** A rule whose backendRefs all weigh 0 sends nowhere: every request is answered 500. */
function zeroWeights(resources: readonly Resource[]): string[] {
  const warnings: string[] = [];
  for (const r of resources.filter(isRoute))
    (r.spec.rules as Route['spec']['rules']).forEach((rule, i) => {
      const refs = rule.backendRefs ?? [];
      if (refs.length && refs.every((b) => (b.weight ?? 1) === 0))
        warnings.push(
          `${id(r)} ${ruleName(rule, i)}: the backendRefs' weights sum to 0: every request it matches is answered 500`,
        );
    });
  return warnings;
}

/** TrafficPolicy and the security policies whose target exists nowhere: they apply to nothing. */
function policiesSelectingNothing(resources: readonly Resource[], ctx: AnalyzeContext): string[] {
  const warnings: string[] = [];
  const routes = new Map(
    resources.filter(isRoute).map((r) => [`${r.kind}/${r.metadata.namespace}/${r.metadata.name}`, r]),
  );
  for (const r of resources) {
    const ns = r.metadata.namespace;
    if (r.kind === 'TrafficPolicy') {
      const t = r.spec.targetRef;
      if (t.kind === 'Service') {
        if (ctx.serviceKnown && !ctx.serviceKnown(ns, t.name))
          warnings.push(
            `${id(r)}: targetRef Service ${ns}/${t.name} does not exist (no resource, no instances): the policy applies to nothing`,
          );
        continue;
      }
      const route = routes.get(`${t.kind}/${ns}/${t.name}`);
      if (!route)
        warnings.push(
          `${id(r)}: targetRef ${t.kind} ${ns}/${t.name} does not exist: the policy applies to nothing`,
        );
      else if (
        t.sectionName &&
        !(route.spec.rules as { name?: string }[]).some((x) => x.name === t.sectionName)
      )
        warnings.push(
          `${id(r)}: targetRef ${t.kind} ${ns}/${t.name} has no rule named ${JSON.stringify(t.sectionName)}: the policy applies to nothing`,
        );
      continue;
    }
    if (
      r.kind === 'AuthorizationPolicy' ||
      r.kind === 'RequestAuthentication' ||
      r.kind === 'PeerAuthentication'
    ) {
      const spec = r.spec as { targetRef?: { name: string }; selector?: { service: string } };
      const name = spec.targetRef?.name ?? spec.selector?.service;
      if (name && ctx.serviceKnown && !ctx.serviceKnown(ns, name))
        warnings.push(
          `${id(r)}: selects Service ${ns}/${name}, which does not exist (no resource, no instances): the policy applies to nothing`,
        );
    }
  }
  return warnings;
}
