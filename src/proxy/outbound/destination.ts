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
import { createBalancer, type Balancer } from '../balance/balancer.ts';
import { end, endpointKey, EndpointState, start } from '../balance/endpoint-state.ts';
import { hashKeyExtractor, type HashKeyExtractor } from '../balance/hash-key.ts';
import { bulkheadFromSpec, type Bulkhead, type RetryLimiter } from '../breaker/bulkhead.ts';
import { circuitBreakerFromSpec, type CircuitBreaker } from '../breaker/circuit-breaker.ts';
import type { MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { HealthChecker } from '../health/health-checker.ts';
import { OutlierDetector, OUTLIER_DEFAULTS, type Outcome } from '../outlier/outlier-detector.ts';
import { RetryBudget } from '../retry/retry-budget.ts';
import { resolveResilience } from '../retry/resilience-options.ts';
import type { PeerInfo } from '../transport/hop-security.ts';
import { TransportPool, type TransportSettings } from '../transport/transport-pool.ts';

/** Header carrying the calling service to the destination's sidecar (identity replaces it under mTLS). */
export const CLIENT_HEADER = 'x-hexmesh-client';

export function serviceKey(name: string, namespace: string): string {
  return `${name}.${namespace}`;
}

export class Destination {
  readonly name: string;
  readonly namespace: string;
  readonly key: string;
  service: MeshService;
  policy: TrafficPolicySpec | undefined;
  balancer: Balancer;
  hashKey: HashKeyExtractor;
  outlier: OutlierDetector | undefined;
  health: HealthChecker | undefined;
  breaker: CircuitBreaker | undefined;
  bulkhead: Bulkhead;
  retryLimiter: RetryLimiter;
  budget: RetryBudget;
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
    this.name = service.name;
    this.namespace = service.namespace;
    this.key = serviceKey(service.name, service.namespace);
    this.service = service;
    this.#defaults = transport;
    this.#transports = new TransportPool(transport);
    this.#metrics = metrics;
    this.#h2Hop = h2Hop;
    this.balancer = createBalancer(policy?.loadBalancer, []);
    this.hashKey = hashKeyExtractor(undefined);
    this.bulkhead = undefined as unknown as Bulkhead;
    this.retryLimiter = undefined as unknown as RetryLimiter;
    this.budget = undefined as unknown as RetryBudget;
    this.send = (req) => this.#send(req);
    this.update(service, policy);
  }

  /**
   * Apply a new snapshot of this service and its policy. Each stateful part is rebuilt only
   * when its own policy section changed, so an unrelated edit (a retry code, a timeout) keeps
   * ejections, open circuits, health results and in-flight counts.
   */
  update(service: MeshService, policy: TrafficPolicySpec | undefined): void {
    this.service = service;
    this.policy = policy;
    const first = this.#sections.size === 0;
    const changed = (name: string, section: unknown): boolean => {
      const json = JSON.stringify(section ?? null);
      if (!first && this.#sections.get(name) === json) return false;
      this.#sections.set(name, json);
      return true;
    };
    if (changed('loadBalancer', policy?.loadBalancer)) {
      // A new algorithm (or panic threshold, EWMA decay) takes over the same endpoint objects,
      // so their in-flight counts, health and ejections carry over.
      this.balancer = createBalancer(policy?.loadBalancer, this.balancer.endpoints);
      this.hashKey = hashKeyExtractor(policy?.loadBalancer?.hashOn);
    }
    this.balancer.update(service.endpoints.map((e) => new EndpointState({ ...e, meshed: e.meshed })));
    this.#peers.clear();
    for (const e of service.endpoints)
      this.#peers.set(endpointKey(e.address, e.port), {
        meshed: e.meshed,
        identity: e.identity,
        service: service.name,
        namespace: service.namespace,
      });
    const eps = this.balancer.endpoints;
    if (changed('outlierDetection', policy?.outlierDetection)) {
      this.outlier?.close();
      this.outlier = new OutlierDetector(policy?.outlierDetection ?? OUTLIER_DEFAULTS, {
        onEject: (_key, reason) => {
          this.#metrics.recordOutlierEjection(this.name, reason);
          this.#metrics.setEjectedEndpoints(this.name, this.#ejectedCount());
        },
        onReturn: () => this.#metrics.setEjectedEndpoints(this.name, this.#ejectedCount()),
      });
    }
    if (changed('healthCheck', policy?.healthCheck)) {
      this.health?.close();
      this.health = policy?.healthCheck ? new HealthChecker(policy.healthCheck, eps, {}) : undefined;
    }
    if (changed('circuitBreaker', policy?.circuitBreaker)) {
      this.breaker = circuitBreakerFromSpec(policy?.circuitBreaker);
      this.breaker?.onStateChange((state) => this.#metrics.setCircuitState(this.name, state));
      this.#metrics.setCircuitState(this.name, 'closed');
    }
    if (changed('connectionPool', policy?.connectionPool)) {
      const bh = bulkheadFromSpec(policy?.connectionPool, this.name);
      this.bulkhead = bh.bulkhead;
      this.retryLimiter = bh.retries;
    }
    if (changed('retryBudget', policy?.retries?.budget))
      this.budget = new RetryBudget(resolveResilience(undefined, policy).retry.budget);
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
    const ep = this.balancer.pick(
      req.ctx.attempt === 0 && this.hashKey
        ? { hashKey: this.hashKey(req.headers, req.ctx.srcAddress) }
        : undefined,
    );
    if (!ep)
      throw new HexmeshError(
        'HEXMESH_ERR_NO_HEALTHY_ENDPOINTS',
        this.balancer.endpoints.length === 0
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
