/**
 * The outbound side, assembled from one config snapshot:
 *
 *   authority → destination → route rule (match, redirect, filters, mirror, fault, rate limit)
 *     → weighted backend → [circuit breaker + bulkhead + fallback → request timeout → retry
 *     (per-try timeout, budget) → balancer → connection]
 *
 * Chains are built here, when config changes, never per request. Destinations (with their
 * balancer, ejections, circuits and connections) are carried over from the previous stack.
 */
import type { ProxyConfig } from '../../config/proxy-config.ts';
import type { GRPCRoute, HTTPRoute, TrafficPolicySpec } from '../../config/resources.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { ProxyMetrics } from '../../telemetry/metrics.ts';
import { breakerLayer } from '../breaker/layer.ts';
import { fallbackFromSpec } from '../breaker/fallback.ts';
import { compose, type Layer, type MeshRequest, type MeshResponse, type Service } from '../core/dispatch.ts';
import { faultLayer } from '../fault/fault-layer.ts';
import { rateLimitLayer } from '../ratelimit/rate-limit-layer.ts';
import { resolveResilience } from '../retry/resilience-options.ts';
import { retryLayer } from '../retry/retry-layer.ts';
import { buildRedirect, MirrorSampler, shadowAuthority, type CompiledMirror } from '../route/filters.ts';
import {
  applyBackendRequestFilters,
  applyBackendResponseFilters,
  applyRequestFilters,
  applyResponseFilters,
  compileRoutes,
  noBackendError,
  noRouteError,
  parseAuthority,
  type BackendTarget,
  type MatchedRule,
} from '../route/route-table.ts';
import { deadlineLayer, timeoutLayer } from '../timeout/timeout-layer.ts';
import type { TransportSettings } from '../transport/transport-pool.ts';
import type { Readable } from 'node:stream';
import { endpointKey } from '../balance/endpoint-state.ts';
import {
  CLIENT_HEADER,
  Destination,
  pinEndpoint,
  serviceKey,
  type DestinationUpdate,
} from './destination.ts';
import { teeBody } from './mirror-tee.ts';
import type { DestinationParts } from './policy-parts.ts';

/** Most distinct authorities remembered per config (a bound against Host-header floods). */
const AUTHORITY_CACHE_LIMIT = 4096;

export interface OutboundStack {
  /** Routes by Host / :authority. */
  readonly service: Service;
  /** The same chain with the destination fixed (per-upstream local ports). */
  serviceFor(name: string): Service | undefined;
  readonly destinations: ReadonlyMap<string, Destination>;
  destination(name: string): Destination | undefined;
  /**
   * The destination (its key) a captured connection to `address:port` was going to: a
   * service's virtual address (cluster IP) on one of its ports, or one endpoint's own address.
   */
  serviceAt(address: string, port: number): string | undefined;
  /**
   * Put the destinations' prepared updates in force. Until then the stack is built but the
   * running destinations are untouched, so the proxy can still refuse the whole config
   * (a later build step failing) without leaving part of it applied. Idempotent.
   */
  commit(): void;
  /** Drop the prepared updates and the destinations this stack created. Idempotent. */
  abort(): void;
}

/**
 * A destination as this stack's chains see it: the parts its prepared update built (in force
 * once the stack commits) and the policy they came from.
 */
type Target = DestinationParts &
  Pick<Destination, 'name' | 'namespace' | 'key' | 'send'> & { policy: TrafficPolicySpec | undefined };

interface Entry {
  dst: Target;
  /** The Service's declared ports; the first one stands for a request that names no port (80 if declared). */
  ports: readonly number[];
  /** The chain for requests with no route attached (passthrough to the service). */
  direct: Service;
  /** Chains per matched rule, built on first use (rules are fixed per config). */
  rules: Map<MatchedRule, Service>;
  /** Per declared port: the routes attached there (a parentRef `port` narrows a route to one port). */
  byPort: Map<number, Service>;
  /** A port the Service does not declare: only routes whose parentRef names no port. */
  otherPort: Service;
  /** A request that names no port: the first of `ports`. */
  entry: Service;
}

/**
 * Lazy discovery (optional): called for a request whose authority the config does not know,
 * with the unknown-service error it would otherwise get. The control client subscribes to the
 * destination and, once the new config is in, routes the request again (proxy.ts).
 */
export type UnknownAuthorityHandler = (req: MeshRequest, err: HexmeshError) => Promise<MeshResponse>;

export function buildOutbound(
  config: ProxyConfig,
  previous: ReadonlyMap<string, Destination> | undefined,
  metrics: ProxyMetrics,
  transport: TransportSettings,
  onUnknown?: UnknownAuthorityHandler,
): OutboundStack {
  const ns = config.proxy.namespace;
  const self = config.proxy.service;
  const routes = config.resources.filter(
    (r): r is HTTPRoute | GRPCRoute => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute',
  );
  const policies = config.resources.filter((r) => r.kind === 'TrafficPolicy');
  const h2Hop = config.proxy.hopTransport === 'http2';

  const servicePolicy = (name: string, namespace: string): TrafficPolicySpec | undefined =>
    policies.find(
      (p) =>
        p.spec.targetRef.kind === 'Service' &&
        p.spec.targetRef.name === name &&
        p.metadata.namespace === namespace,
    )?.spec;
  /** A policy attached to a route (optionally one rule) overrides the service's, field by field. */
  const rulePolicy = (
    rule: MatchedRule,
    base: TrafficPolicySpec | undefined,
  ): TrafficPolicySpec | undefined => {
    const [rns, rname] = rule.routeLabel.split('/');
    const p = policies.find(
      (x) =>
        x.spec.targetRef.kind === rule.kind &&
        x.spec.targetRef.name === rname &&
        x.metadata.namespace === rns &&
        (x.spec.targetRef.sectionName === undefined || x.spec.targetRef.sectionName === rule.ruleName),
    );
    return p ? ({ ...base, ...p.spec } as TrafficPolicySpec) : base;
  };

  // Destinations: reuse by key (prepared, not yet updated), create new ones. All or nothing:
  // the first one that refuses its policy drops what the others prepared.
  const destinations = new Map<string, Destination>();
  const targets = new Map<string, Target>();
  const updates: DestinationUpdate[] = [];
  const created: Destination[] = [];
  const abort = (): void => {
    for (const u of updates) u.abort();
    for (const d of created) d.destroy();
  };
  try {
    for (const svc of config.services) {
      const key = serviceKey(svc.name, svc.namespace);
      const policy = servicePolicy(svc.name, svc.namespace);
      let dst = previous?.get(key);
      let parts: DestinationParts;
      if (dst) {
        const u = dst.prepare(svc, policy);
        updates.push(u);
        parts = u.parts;
      } else {
        // A new destination serves nobody until this stack is in force: built in place.
        dst = new Destination(svc, policy, transport, metrics, h2Hop);
        created.push(dst);
        parts = dst;
      }
      destinations.set(key, dst);
      targets.set(key, {
        ...pickParts(parts),
        name: dst.name,
        namespace: dst.namespace,
        key,
        send: dst.send,
        policy,
      });
    }
  } catch (err) {
    abort();
    throw err;
  }

  const entries = new Map<string, Entry>();

  /** [breaker → timeout → retry] → balancer, for one destination under one rule's settings. */
  const backendChain = (
    dst: Target,
    rule: MatchedRule | undefined,
    policy: TrafficPolicySpec | undefined,
  ): Service => {
    const res = resolveResilience(rule ? { timeouts: rule.timeouts, retry: rule.retry } : undefined, policy);
    // Looked up per call: the fallback's entry may not be built yet (entries fill in a loop below).
    const fallback = fallbackFromSpec(dst.policy?.fallback, (name) => {
      const key = serviceKey(name, dst.namespace);
      const unknown = unknownService(name);
      return (req) => (entries.get(key)?.entry ?? unknown)(req);
    });
    const layers: Layer[] = [
      // The route timeout also bounds the wait for a bulkhead slot.
      deadlineLayer({ request: res.timeouts.request }),
      breakerLayer({ breaker: dst.breaker, bulkhead: dst.bulkhead, fallback, service: dst.name }),
      timeoutLayer({ request: res.timeouts.request }),
      retryLayer(
        { retry: res.retry, timeouts: res.timeouts },
        { budget: dst.budget, limiter: dst.retryLimiter },
      ),
    ];
    return compose(layers, dst.send);
  };

  const backendService = (
    b: BackendTarget,
    rule: MatchedRule,
    policy: TrafficPolicySpec | undefined,
  ): Service => {
    const dst = targets.get(serviceKey(b.name, b.namespace));
    if (!dst)
      return () =>
        Promise.reject(
          new HexmeshError(
            'HEXMESH_ERR_NO_HEALTHY_ENDPOINTS',
            `no endpoints for ${b.name}: route ${rule.routeLabel} names an unknown service`,
            {
              context: { service: b.name },
            },
          ),
        );
    return backendChain(dst, rule, { ...dst.policy, ...policy } as TrafficPolicySpec);
  };

  const ruleChain = (e: Entry, rule: MatchedRule): Service => {
    const policy = rulePolicy(rule, e.dst.policy);
    const backends = new Map<BackendTarget, Service>();
    for (const b of rule.backends.all)
      backends.set(b, backendService(b, rule, policy === e.dst.policy ? undefined : policy));
    const mirrors = rule.mirrors;
    const forward: Service = async (req) => {
      if (rule.redirect) return buildRedirect(req, rule.redirect, rule.matchedPrefix);
      let out = applyRequestFilters(rule, req);
      if (mirrors.length) out = sendMirrors(out, rule);
      const b = rule.backends.pick();
      if (!b) throw noBackendError(rule);
      const res = await backends.get(b)!(b.filters ? applyBackendRequestFilters(b, out) : out);
      return applyResponseFilters(rule, b.filters ? applyBackendResponseFilters(b, res) : res);
    };
    return compose(edgeLayers(policy), forward);
  };

  /**
   * Fault injection and rate limiting of a policy: in front of a rule's forwarding, or of the
   * passthrough chain when no route is attached (a Service's policy applies either way).
   */
  const edgeLayers = (policy: TrafficPolicySpec | undefined): Layer[] => {
    const res = resolveResilience(undefined, policy);
    const layers: Layer[] = [];
    if (res.faults) layers.push(faultLayer(res.faults));
    if (res.rateLimit) layers.push(rateLimitLayer(res.rateLimit));
    return layers;
  };

  const samplers = new Map<CompiledMirror, MirrorSampler>();
  /**
   * Fire-and-forget copies of `req` to the rule's mirrors; returns the request to send on (with
   * a body, its stream is then shared with the copies: mirror-tee.ts).
   */
  const sendMirrors = (req: MeshRequest, rule: MatchedRule): MeshRequest => {
    const targets: Entry[] = [];
    for (const m of rule.mirrors) {
      let sampler = samplers.get(m);
      if (!sampler) samplers.set(m, (sampler = new MirrorSampler(m)));
      const t = sampler.next();
      const e = t && entries.get(serviceKey(t.name, t.namespace));
      if (e) targets.push(e);
    }
    if (targets.length === 0) return req;
    let primary = req;
    let bodies: (Readable | null)[] = targets.map(() => null);
    if (req.body) {
      const tee = teeBody(req.body, targets.length);
      primary = { ...req, body: tee.primary };
      bodies = tee.copies;
    }
    targets.forEach((e, i) => {
      const copy: MeshRequest = {
        ...req,
        body: bodies[i],
        authority: shadowAuthority(req.authority),
        headers: { ...req.headers },
        ctx: { ...req.ctx, dstService: e.dst.name, notes: {}, deadline: Infinity, trySignal: undefined },
      };
      e.direct(copy).then(
        (r) => r.body?.resume(),
        () => bodies[i]?.destroy(),
      );
    });
    return primary;
  };

  const portsOf = new Map(config.services.map((svc) => [serviceKey(svc.name, svc.namespace), svc.ports]));
  /** The chain for requests to `e`'s Service on `port` (0: an undeclared port; parentRefs with a port never match it). */
  const routedOn = (e: Entry, port: number): Service => {
    const table = compileRoutes({ name: e.dst.name, namespace: e.dst.namespace, port }, routes, ns);
    if (!table) return e.direct;
    return (req: MeshRequest): Promise<MeshResponse> => {
      const rule = table.match(req);
      if (!rule) return Promise.reject(noRouteError(e.dst.name, req));
      req.ctx.route = rule.routeLabel;
      let chain = e.rules.get(rule);
      if (!chain) {
        chain = ruleChain(e, rule);
        e.rules.set(rule, chain);
      }
      return chain(req);
    };
  };
  for (const dst of targets.values()) {
    const declared = (portsOf.get(dst.key) ?? []).map((p) => p.port);
    const e: Entry = {
      dst,
      ports: declared.includes(80) ? [80, ...declared.filter((p) => p !== 80)] : declared,
      direct: undefined as unknown as Service,
      rules: new Map(),
      byPort: new Map(),
      otherPort: undefined as unknown as Service,
      entry: undefined as unknown as Service,
    };
    e.direct = compose(edgeLayers(dst.policy), backendChain(dst, undefined, dst.policy));
    for (const p of e.ports) e.byPort.set(p, routedOn(e, p));
    e.otherPort = routedOn(e, 0);
    e.entry = e.ports.length ? e.byPort.get(e.ports[0])! : e.otherPort;
    entries.set(dst.key, e);
  }
  /** The chain for `port` of `e` (undefined: the request named no port). */
  const onPort = (e: Entry, port: number | undefined): Service =>
    port === undefined ? e.entry : (e.byPort.get(port) ?? e.otherPort);

  /**
   * An authority that is one endpoint's own address (`<pod IP>:<port>`): GAMMA delivers it to
   * that endpoint, through the Service's policy but none of its routes (the routes belong to
   * the Service's name, not to its pods).
   */
  const byEndpoint = new Map<string, Entry>();
  for (const e of entries.values())
    for (const svc of config.services)
      if (serviceKey(svc.name, svc.namespace) === e.dst.key)
        for (const ep of svc.endpoints) {
          const key = endpointKey(ep.address, ep.port);
          // The first Service listing the endpoint carries it; any of them reaches the same pod.
          if (!byEndpoint.has(key)) byEndpoint.set(key, e);
        }
  const toEndpoint = (authority: string): Resolved | undefined => {
    const e = byEndpoint.get(authority);
    if (!e) return undefined;
    return {
      e,
      entry: (req) => {
        pinEndpoint(req, authority);
        return e.direct(req);
      },
    };
  };

  interface Resolved {
    e: Entry;
    entry: Service;
  }
  /**
   * A service's virtual addresses (cluster IPs) as authorities: `http://<cluster IP>:<port>/`
   * from an app under transparent capture names the service by its address, as Istio's
   * virtual hosts list the cluster IP among a service's domains. Port 80 also without `:80`.
   * Two services on one address and port (a multi-port Kubernetes Service and the per-port
   * Service made for that port, translate.ts): the one declaring fewer ports is that port's.
   */
  const byVip = new Map<string, Resolved & { ports: number }>();
  const addressesOf = new Map<Entry, readonly string[]>();
  for (const svc of config.services) {
    const e = entries.get(serviceKey(svc.name, svc.namespace));
    if (!e || !svc.addresses.length) continue;
    addressesOf.set(e, svc.addresses);
    for (const a of svc.addresses)
      for (const p of svc.ports) {
        const key = endpointKey(a, p.port);
        const keys = p.port === 80 ? [key, key.slice(0, key.lastIndexOf(':'))] : [key];
        for (const k of keys) {
          const had = byVip.get(k);
          if (!had || had.ports > svc.ports.length)
            byVip.set(k, { e, entry: onPort(e, p.port), ports: svc.ports.length });
        }
      }
  }
  /** `<name>:<port>` where another service owns that port of `e`'s addresses: that one. */
  const portOwner = (e: Entry, port: number | undefined): Resolved | undefined => {
    if (port === undefined) return undefined;
    for (const a of addressesOf.get(e) ?? []) {
      const r = byVip.get(endpointKey(a, port));
      if (r && r.e !== e) return r;
    }
    return undefined;
  };
  const byAuthority = new Map<string, Resolved | null>();
  const resolve = (authority: string): Resolved | undefined => {
    let r = byAuthority.get(authority);
    if (r === undefined) {
      const t = parseAuthority(authority, ns);
      const e = t && entries.get(serviceKey(t.name, t.namespace));
      r = e
        ? (portOwner(e, t.port) ?? { e, entry: onPort(e, t.port) })
        : (byVip.get(authority) ?? toEndpoint(authority) ?? null);
      if (byAuthority.size < AUTHORITY_CACHE_LIMIT) byAuthority.set(authority, r);
    }
    return r ?? undefined;
  };

  const service: Service = (req) => {
    // The app must not name its caller: only this sidecar sets x-hexmesh-client (destination.ts).
    delete req.headers[CLIENT_HEADER];
    const r = resolve(req.authority);
    if (!r) {
      const err = unknownAuthority(req.authority, self);
      return onUnknown ? onUnknown(req, err) : Promise.reject(err);
    }
    req.ctx.dstService = r.e.dst.name;
    return r.entry(req);
  };

  let settled = false;
  return {
    service,
    destinations,
    commit() {
      if (settled) return;
      settled = true;
      for (const u of updates) u.commit();
      if (previous) for (const [key, d] of previous) if (!destinations.has(key)) void d.close();
    },
    abort() {
      if (settled) return;
      settled = true;
      abort();
    },
    destination: (name) => destinations.get(name.includes('.') ? name : serviceKey(name, ns)),
    serviceAt(address, port) {
      const key = endpointKey(address, port);
      return (byVip.get(key)?.e ?? byEndpoint.get(key))?.dst.key;
    },
    serviceFor(name) {
      const e = entries.get(name.includes('.') ? name : serviceKey(name, ns));
      if (!e) return undefined;
      return (req) => {
        delete req.headers[CLIENT_HEADER];
        req.ctx.dstService = e.dst.name;
        return e.entry(req);
      };
    },
  };
}

function unknownAuthority(authority: string, self: string): HexmeshError {
  return new HexmeshError(
    'HEXMESH_ERR_UNKNOWN_SERVICE',
    authority
      ? `unknown service "${authority}": not in the mesh configuration of ${self}`
      : 'request has no Host or :authority naming a service',
    { context: { authority } },
  );
}

function unknownService(name: string): Service {
  return () =>
    Promise.reject(new HexmeshError('HEXMESH_ERR_UNKNOWN_SERVICE', `fallback service ${name} is not known`));
}

function pickParts(p: DestinationParts): DestinationParts {
  return {
    balancer: p.balancer,
    hashKey: p.hashKey,
    outlier: p.outlier,
    health: p.health,
    breaker: p.breaker,
    bulkhead: p.bulkhead,
    retryLimiter: p.retryLimiter,
    budget: p.budget,
  };
}
