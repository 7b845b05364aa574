/**
 * One destination service as the outbound side sees it: its endpoints and everything that
 * keeps state about them (balancer, outlier detection, health checks, circuit breaker,
 * bulkhead, retry budget, connections). A Destination lives across config updates, so
 * ejections, open circuits and warm connections survive a route change.
 */
import { performance } from 'node:perf_hooks';
import type { MeshService } from '../../config/proxy-config.ts';
import type { TrafficPolicySpec } from '../../config/resources.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { ProxyMetrics } from '../../telemetry/metrics.ts';
import { createBalancer } from '../balance/balancer.ts';
import { end, endpointKey, EndpointState, isEligible, start } from '../balance/endpoint-state.ts';
import { hashKeyExtractor } from '../balance/hash-key.ts';
import type { Bulkhead, RetryLimiter } from '../breaker/bulkhead.ts';
import type { MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import type { Outcome } from '../outlier/outlier-detector.ts';
import type { RetryBudget } from '../retry/retry-budget.ts';
import { closeParts, POLICY_SECTIONS, type DestinationParts, type PartsContext } from './policy-parts.ts';
import type { PeerInfo } from '../transport/hop-security.ts';
import { TransportPool, type TransportSettings } from '../transport/transport-pool.ts';

/** Header carrying the calling service to the destination's sidecar (identity replaces it under mTLS). */
export const CLIENT_HEADER = 'x-hexmesh-client';

/** Requests (by context, shared by their tries) addressed to one endpoint's own address. */
const pinned = new WeakMap<object, string>();

/**
 * Send `req` to the endpoint `key` (`address:port`) rather than a balanced pick: a request
 * addressed to a pod's own address. Fails no-healthy-endpoints if that endpoint is ejected or gone.
 */
export function pinEndpoint(req: MeshRequest, key: string): void {
  pinned.set(req.ctx, key);
}

export function serviceKey(name: string, namespace: string): string {
  return `${name}.${namespace}`;
}

/** A prepared update of one destination: built, not yet in force. */
export interface DestinationUpdate {
  /** The parts the new chains are built from (new ones, or the running ones kept). */
  readonly parts: DestinationParts;
  /** Put the update in force. Idempotent; a no-op after `abort()`. */
  commit(): void;
  /** Drop what was built; the running state stays as it was. Idempotent. */
  abort(): void;
}

/**
 * A base class whose instances have the fields of {@link DestinationParts}, so that they are
 * declared once (policy-parts.ts); a Destination sets them all in `#commit`.
 */
const WithParts = class {} as new () => DestinationParts;

export class Destination extends WithParts {
  readonly name: string;
  readonly namespace: string;
  readonly key: string;
  service: MeshService;
  policy: TrafficPolicySpec | undefined;
  /** The parts in force (the same objects as this Destination's part fields). */
  #parts: DestinationParts;
  /** The terminal service: pick an endpoint, send, record the outcome. Built once. */
  readonly send: Service;
  readonly #transports: TransportPool;
  readonly #defaults: TransportSettings;
  readonly #metrics: ProxyMetrics;
  readonly #h2Hop: boolean;
  /** Per endpoint key: what mTLS needs to secure the hop (meshed, expected identity). */
  readonly #peers = new Map<string, PeerInfo>();
  /** JSON of each policy section as last applied: a section's state is rebuilt only when it changed. */
  readonly #sections = new Map<string, string>();

  constructor(
    service: MeshService,
    policy: TrafficPolicySpec | undefined,
    transport: TransportSettings,
    metrics: ProxyMetrics,
    h2Hop: boolean,
  ) {
    super();
    this.name = service.name;
    this.namespace = service.namespace;
    this.key = serviceKey(service.name, service.namespace);
    this.service = service;
    this.#defaults = transport;
    this.#transports = new TransportPool(transport);
    this.#metrics = metrics;
    this.#h2Hop = h2Hop;
    // Placeholders until the first update builds every part.
    this.#parts = {
      balancer: createBalancer(undefined, []),
      hashKey: hashKeyExtractor(undefined),
      outlier: undefined,
      health: undefined,
      breaker: undefined,
      bulkhead: undefined as unknown as Bulkhead,
      retryLimiter: undefined as unknown as RetryLimiter,
      budget: undefined as unknown as RetryBudget,
    };
    Object.assign(this, this.#parts);
    this.send = (req) => this.#send(req);
    this.update(service, policy);
  }

  /**
   * Apply a new snapshot of this service and its policy, all or nothing (see `prepare`).
   */
  update(service: MeshService, policy: TrafficPolicySpec | undefined): void {
    this.prepare(service, policy).commit();
  }

  /**
   * Build what a new snapshot of this service and its policy needs, without touching the
   * running state: a policy the proxy refuses throws here and leaves nothing half-applied
   * (issue 10: a refused update used to record its sections as applied, so the next
   * unrelated update was accepted with the bad policy). `commit()` swaps it all in.
   *
   * Each stateful part is rebuilt only when its own policy section changed, so an unrelated
   * edit (a retry code, a timeout) keeps ejections, open circuits, health results and
   * in-flight counts.
   */
  prepare(service: MeshService, policy: TrafficPolicySpec | undefined): DestinationUpdate {
    const first = this.#sections.size === 0;
    const sections = new Map(this.#sections);
    const current = this.#parts;
    const next: DestinationParts = { ...current };
    const built: Partial<DestinationParts>[] = [];
    const ctx: PartsContext = {
      service: this.name,
      outlier: {
        onEject: (_key, reason) => {
          this.#metrics.recordOutlierEjection(this.name, reason);
          this.#metrics.setEjectedEndpoints(this.name, this.#ejectedCount());
        },
        onReturn: () => this.#metrics.setEjectedEndpoints(this.name, this.#ejectedCount()),
      },
    };
    try {
      for (const [name, section] of POLICY_SECTIONS) {
        const json = JSON.stringify(section.of(policy) ?? null);
        if (!first && sections.get(name) === json) continue;
        const parts = section.build(policy, ctx);
        built.push(parts);
        Object.assign(next, parts);
        sections.set(name, json);
      }
    } catch (err) {
      for (const parts of built) closeParts(parts);
      throw err;
    }
    let done = false;
    return {
      parts: next,
      commit: () => {
        if (done) return;
        done = true;
        this.#commit(service, policy, current, next, sections);
      },
      abort: () => {
        if (done) return;
        done = true;
        for (const parts of built) closeParts(parts);
      },
    };
  }

  #commit(
    service: MeshService,
    policy: TrafficPolicySpec | undefined,
    old: DestinationParts,
    next: DestinationParts,
    sections: Map<string, string>,
  ): void {
    this.service = service;
    this.policy = policy;
    this.#sections.clear();
    for (const [k, v] of sections) this.#sections.set(k, v);
    // A new algorithm (or panic threshold, EWMA decay) takes over the same endpoint objects,
    // so their in-flight counts, health and ejections carry over.
    if (next.balancer !== old.balancer) next.balancer.update(old.balancer.endpoints);
    if (next.outlier !== old.outlier) old.outlier?.close();
    if (next.health !== old.health) old.health?.close();
    if (next.breaker !== old.breaker) {
      next.breaker?.onStateChange((state) => this.#metrics.setCircuitState(this.name, state));
      this.#metrics.setCircuitState(this.name, 'closed');
    }
    this.#parts = next;
    Object.assign(this, next);
    const endpoints = choosableEndpoints(service);
    this.balancer.update(endpoints.map((e) => new EndpointState({ ...e, meshed: e.meshed })));
    this.#peers.clear();
    for (const e of endpoints)
      this.#peers.set(endpointKey(e.address, e.port), {
        meshed: e.meshed,
        identity: e.identity,
        service: service.name,
        namespace: service.namespace,
      });
    const eps = this.balancer.endpoints;
    this.#transports.configure(transportSettingsFor(policy, this.#defaults));
    this.outlier?.setEndpoints(eps);
    this.health?.setTargets(eps);
    this.#transports.retain(new Set(eps.map((e) => e.key)));
  }

  #ejectedCount(): number {
    let n = 0;
    for (const e of this.balancer.endpoints) if (e.ejected) n++;
    return n;
  }

  async #send(req: MeshRequest): Promise<MeshResponse> {
    const pin = pinned.get(req.ctx);
    let ep =
      pin === undefined
        ? this.balancer.pick(
            req.ctx.attempt === 0 && this.hashKey
              ? { hashKey: this.hashKey(req.headers, req.ctx.srcAddress) }
              : undefined,
          )
        : this.balancer.endpoints.find((e) => e.key === pin && !e.ejected);
    if (ep && pin === undefined && req.ctx.attempt > 0 && ep.key === req.ctx.endpoint) ep = this.#other(ep);
    if (!ep)
      throw new HexmeshError(
        'HEXMESH_ERR_NO_HEALTHY_ENDPOINTS',
        pin !== undefined
          ? `endpoint ${pin} of ${this.name} is ejected or no longer listed`
          : this.balancer.endpoints.length === 0
            ? `no endpoints for ${this.name}`
            : `no healthy endpoints for ${this.name} (${this.balancer.endpoints.length} known, all unhealthy or ejected)`,
        { context: { service: this.name } },
      );
    req.ctx.endpoint = ep.key;
    if (ep.meshed) req.headers[CLIENT_HEADER] = req.ctx.srcService;
    else delete req.headers[CLIENT_HEADER];
    start(ep);
    const t0 = performance.now();
    let res: MeshResponse;
    try {
      res = await this.#transports.request(
        ep.key,
        ep.address,
        ep.port,
        req.protocol === 'http2' || (this.#h2Hop && ep.meshed),
        req,
        this.#peers.get(ep.key),
      );
    } catch (err) {
      end(ep);
      if (!req.ctx.signal.aborted) this.outlier?.record(ep, 'gateway-error');
      throw err;
    }
    end(ep, performance.now() - t0);
    this.outlier?.record(ep, outcomeOf(res));
    return res;
  }

  /**
   * A retry the balancer sent back to the endpoint that just failed it: another eligible
   * endpoint at random, if there is one (as Envoy's previous-hosts retry predicate). Without
   * this, an endpoint that fails fast looks cheapest to peak-EWMA and gets every retry too.
   */
  #other(failed: EndpointState): EndpointState {
    const eps = this.balancer.endpoints;
    let n = 0;
    for (const e of eps) if (e !== failed && isEligible(e)) n++;
    if (n === 0) return failed;
    let k = Math.floor(Math.random() * n);
    for (const e of eps) if (e !== failed && isEligible(e) && k-- === 0) return e;
    return failed;
  }

  /** What mTLS needs to know about an endpoint (tunnels and upgrades pick their own security). */
  peerOf(key: string): PeerInfo | undefined {
    return this.#peers.get(key);
  }

  /** Stop background work and close connections gracefully. */
  close(): Promise<void> {
    this.outlier?.close();
    this.health?.close();
    return this.#transports.close();
  }

  destroy(): void {
    this.outlier?.close();
    this.health?.close();
    this.#transports.destroy();
  }
}

/**
 * The endpoints a request may go to. A STRICT destination accepts only mutual TLS, so an
 * endpoint without a sidecar is dropped here even if the control plane sent it (a rogue or
 * stale registration): traffic to that service never leaves in plaintext.
 */
export function choosableEndpoints(service: MeshService): MeshService['endpoints'] {
  return service.mtls === 'STRICT' ? service.endpoints.filter((e) => e.meshed) : service.endpoints;
}

function outcomeOf(res: MeshResponse): Outcome {
  const s = res.status;
  if (s < 500) {
    // gRPC failures ride on 200: unavailable in a trailers-only response counts as a gateway error.
    const g = res.headers['grpc-status'];
    return g === '14' ? 'gateway-error' : 'success';
  }
  return s === 502 || s === 503 || s === 504 ? 'gateway-error' : '5xx';
}

function transportSettingsFor(
  policy: TrafficPolicySpec | undefined,
  base: TransportSettings,
): TransportSettings {
  return {
    ...base,
    connectTimeout: policy?.timeouts?.connect ?? base.connectTimeout,
    idleTimeout: policy?.timeouts?.idle ?? base.idleTimeout,
    maxConnections: policy?.connectionPool?.maxConnections ?? base.maxConnections,
  };
}
