/**
 * Schemas of the mesh resources, Kubernetes-shaped (apiVersion/kind/metadata/spec).
 * One schema per resource; validated once at the edge, then frozen (see load.ts).
 * HTTPRoute/GRPCRoute follow Gateway API v1 (GAMMA: parentRefs to a Service).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { policySectionProblem, type PolicySection } from '../proxy/outbound/policy-parts.ts';

/** A duration string or number, parsed to milliseconds. */
export const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid duration ${JSON.stringify(v)} (use e.g. 500ms, 2s, 1m)`,
    });
    return z.NEVER;
  }
  return ms;
});

const dnsLabel = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lower-case DNS name (a-z, 0-9, -, .)');

const regex = z.string().superRefine((s, ctx) => {
  try {
    new RegExp(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `invalid regular expression: ${(e as Error).message}` });
  }
});

export const metadata = z
  .object({
    name: dnsLabel,
    namespace: dnsLabel.default('default'),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    /** Used for route precedence ("oldest route wins"); set by the store, optional in files. */
    creationTimestamp: z.string().optional(),
    resourceVersion: z.string().optional(),
  })
  .strict();

const port = z.number().int().min(1).max(65535);
const protocol = z.enum(['http', 'http2', 'grpc', 'tcp', 'opaque']);

// ---------- Service ----------
export const servicePortSchema = z
  .object({
    name: z.string().optional(),
    port,
    targetPort: port.optional(),
    protocol: protocol.default('http'),
  })
  .strict();

export const serviceSchema = z
  .object({
    apiVersion: z.literal('hexmesh.io/v1alpha1'),
    kind: z.literal('Service'),
    metadata,
    spec: z
      .object({
        ports: z.array(servicePortSchema).min(1),
        /** Labels an instance must carry to belong to this service (e.g. version: v2 for reviews-v2). */
        selector: z.record(z.string(), z.string()).optional(),
        /** Name of the service whose instances this one selects from (reviews-v2 selects from reviews). */
        instancesOf: dnsLabel.optional(),
        /**
         * Virtual addresses (a Kubernetes Service's cluster IPs): a captured connection to
         * `<address>:<port>` goes to this service (docs/kubernetes.md, "Transparent capture").
         */
        addresses: z.array(z.union([z.ipv4(), z.ipv6()])).optional(),
      })
      .strict(),
  })
  .strict();

// ---------- Gateway API shared pieces ----------
const parentRef = z
  .object({
    group: z.string().optional(),
    kind: z.literal('Service').default('Service'),
    name: dnsLabel,
    namespace: dnsLabel.optional(),
    port: port.optional(),
    sectionName: z.string().optional(),
  })
  .strict();

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'invalid header name');
const headerValuePair = z.object({ name: headerName, value: z.string() }).strict();
const headerModifier = z
  .object({
    set: z.array(headerValuePair).optional(),
    add: z.array(headerValuePair).optional(),
    remove: z.array(headerName).optional(),
  })
  .strict();

const backendRef = z
  .object({
    group: z.string().optional(),
    kind: z.literal('Service').default('Service'),
    name: dnsLabel,
    namespace: dnsLabel.optional(),
    port: port.optional(),
    weight: z.number().int().min(0).max(1_000_000).default(1),
    /**
     * Filters for requests sent to this backend only (Gateway API `backendRefs[].filters`):
     * the header modifiers; applied after the rule's own filters.
     */
    filters: z
      .array(
        z.discriminatedUnion('type', [
          z
            .object({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier })
            .strict(),
          z
            .object({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier })
            .strict(),
        ]),
      )
      .optional(),
  })
  .strict();

const matchRegexCheck = (m: { type: string; value: string }, ctx: z.RefinementCtx) => {
  if (m.type === 'RegularExpression') {
    try {
      new RegExp(m.value);
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        path: ['value'],
        message: `invalid regular expression: ${(e as Error).message}`,
      });
    }
  }
};
const headerMatch = z
  .object({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: headerName,
    value: z.string(),
  })
  .strict()
  .superRefine(matchRegexCheck);
const queryMatch = z
  .object({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: z.string().min(1),
    value: z.string(),
  })
  .strict()
  .superRefine(matchRegexCheck);

const mirror = z
  .object({
    backendRef: backendRef.omit({ weight: true, filters: true }),
    percent: z.number().int().min(0).max(100).optional(),
    fraction: z
      .object({ numerator: z.number().int().min(0), denominator: z.number().int().min(1).default(100) })
      .strict()
      .optional(),
  })
  .strict();

const pathModifier = z
  .object({
    type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
    replaceFullPath: z.string().optional(),
    replacePrefixMatch: z.string().optional(),
  })
  .strict();

export const httpFilterSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }).strict(),
  z.object({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }).strict(),
  z
    .object({
      type: z.literal('RequestRedirect'),
      requestRedirect: z
        .object({
          scheme: z.enum(['http', 'https']).optional(),
          hostname: z.string().optional(),
          path: pathModifier.optional(),
          port: port.optional(),
          statusCode: z
            .union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)])
            .default(302),
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      type: z.literal('URLRewrite'),
      urlRewrite: z.object({ hostname: z.string().optional(), path: pathModifier.optional() }).strict(),
    })
    .strict(),
  z.object({ type: z.literal('RequestMirror'), requestMirror: mirror }).strict(),
]);

const timeouts = z.object({ request: duration.optional(), backendRequest: duration.optional() }).strict();
const routeRetry = z
  .object({
    codes: z.array(z.number().int().min(400).max(599)).optional(),
    // Gateway API sets no maximum; upstream's own conformance manifest asks for 100
    // (HTTPRouteRetryConnectionError). The retry budget bounds what retries cost.
    attempts: z.number().int().min(0).max(100).optional(),
    backoff: duration.optional(),
    /** hexmesh extension: allow retrying non-idempotent methods (POST) on this rule. */
    retryNonIdempotent: z.boolean().optional(),
  })
  .strict();

export const httpRouteMatchSchema = z
  .object({
    path: z
      .object({
        type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
        value: z.string().default('/'),
      })
      .strict()
      .superRefine((p, ctx) => {
        if (p.type === 'RegularExpression') {
          try {
            new RegExp(p.value);
          } catch (e) {
            ctx.addIssue({
              code: 'custom',
              path: ['value'],
              message: `invalid regular expression: ${(e as Error).message}`,
            });
          }
        } else if (!p.value.startsWith('/'))
          ctx.addIssue({ code: 'custom', path: ['value'], message: 'path must start with /' });
      })
      .optional(),
    headers: z.array(headerMatch).optional(),
    queryParams: z.array(queryMatch).optional(),
    method: z
      .enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'])
      .optional(),
  })
  .strict();

export const httpRouteSchema = z
  .object({
    apiVersion: z.literal('gateway.networking.k8s.io/v1'),
    kind: z.literal('HTTPRoute'),
    metadata,
    spec: z
      .object({
        parentRefs: z.array(parentRef).min(1),
        hostnames: z.array(z.string()).optional(),
        rules: z
          .array(
            z
              .object({
                name: z.string().optional(),
                matches: z.array(httpRouteMatchSchema).optional(),
                filters: z.array(httpFilterSchema).optional(),
                backendRefs: z.array(backendRef).optional(),
                timeouts: timeouts.optional(),
                retry: routeRetry.optional(),
              })
              .strict()
              .superRefine((r, ctx) => {
                if (
                  r.timeouts?.request &&
                  r.timeouts.backendRequest &&
                  r.timeouts.backendRequest > r.timeouts.request
                )
                  ctx.addIssue({
                    code: 'custom',
                    path: ['timeouts', 'backendRequest'],
                    message: 'backendRequest must not exceed request',
                  });
                const redirect = r.filters?.some((f) => f.type === 'RequestRedirect');
                const rewrite = r.filters?.some((f) => f.type === 'URLRewrite');
                if (redirect && rewrite)
                  ctx.addIssue({
                    code: 'custom',
                    path: ['filters'],
                    message: 'RequestRedirect and URLRewrite cannot be combined',
                  });
                if (redirect && r.backendRefs?.length)
                  ctx.addIssue({
                    code: 'custom',
                    path: ['backendRefs'],
                    message: 'a RequestRedirect rule takes no backendRefs',
                  });
              }),
          )
          .default([{}] as never),
      })
      .strict(),
  })
  .strict();

export const grpcRouteSchema = z
  .object({
    apiVersion: z.literal('gateway.networking.k8s.io/v1'),
    kind: z.literal('GRPCRoute'),
    metadata,
    spec: z
      .object({
        parentRefs: z.array(parentRef).min(1),
        hostnames: z.array(z.string()).optional(),
        rules: z.array(
          z
            .object({
              name: z.string().optional(),
              matches: z
                .array(
                  z
                    .object({
                      method: z
                        .object({
                          type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
                          service: z.string().optional(),
                          method: z.string().optional(),
                        })
                        .strict()
                        .optional(),
                      headers: z.array(headerMatch).optional(),
                    })
                    .strict(),
                )
                .optional(),
              filters: z
                .array(
                  z.discriminatedUnion('type', [
                    z
                      .object({
                        type: z.literal('RequestHeaderModifier'),
                        requestHeaderModifier: headerModifier,
                      })
                      .strict(),
                    z
                      .object({
                        type: z.literal('ResponseHeaderModifier'),
                        responseHeaderModifier: headerModifier,
                      })
                      .strict(),
                    z.object({ type: z.literal('RequestMirror'), requestMirror: mirror }).strict(),
                  ]),
                )
                .optional(),
              backendRefs: z.array(backendRef).optional(),
              timeouts: timeouts.optional(),
              retry: routeRetry.optional(),
            })
            .strict(),
        ),
      })
      .strict(),
  })
  .strict();

// ---------- TrafficPolicy (ours) ----------
const percent = z.number().min(0).max(100);

/**
 * The proxy's own build-time checks on a policy section (src/proxy/outbound/policy-parts.ts):
 * what a proxy would refuse (e.g. `circuitBreaker.window: 0s`), the schema refuses, so the API
 * never stores a policy every sidecar then rejects.
 */
const buildable =
  (section: PolicySection) =>
  (value: unknown, ctx: z.RefinementCtx): void => {
    const problem = policySectionProblem(section, value);
    if (problem) ctx.addIssue({ code: 'custom', message: `refused by the proxy: ${problem}` });
  };

export const trafficPolicySpecSchema = z
  .object({
    /** Policy attachment: a Service (all its traffic) or one HTTPRoute/GRPCRoute (optionally one rule by name). */
    targetRef: z
      .object({
        group: z.string().optional(),
        kind: z.enum(['Service', 'HTTPRoute', 'GRPCRoute']).default('Service'),
        name: dnsLabel,
        sectionName: z.string().optional(),
      })
      .strict(),
    loadBalancer: z
      .object({
        type: z
          .enum(['peakEwma', 'roundRobin', 'leastRequest', 'random', 'ringHash', 'maglev'])
          .default('peakEwma'),
        hashOn: z
          .object({
            header: z.string().optional(),
            cookie: z.string().optional(),
            sourceIp: z.boolean().optional(),
          })
          .strict()
          .refine(
            (h) => [h.header, h.cookie, h.sourceIp].filter(Boolean).length === 1,
            'set exactly one of header, cookie, sourceIp',
          )
          .optional(),
        panicThreshold: percent.default(50),
        /** leastRequest: active request bias (Envoy active_request_bias). */
        activeRequestBias: z.number().min(0).default(1),
        /** peakEwma: decay time constant. */
        decay: duration.default(10_000),
        defaultRtt: duration.default(30),
      })
      .strict()
      .superRefine((lb, ctx) => {
        if ((lb.type === 'ringHash' || lb.type === 'maglev') && !lb.hashOn)
          ctx.addIssue({
            code: 'custom',
            path: ['hashOn'],
            message: `${lb.type} needs hashOn (header, cookie or sourceIp)`,
          });
      })
      .superRefine(buildable('loadBalancer'))
      .optional(),
    timeouts: z
      .object({
        connect: duration.optional(),
        request: duration.optional(),
        perTry: duration.optional(),
        idle: duration.optional(),
        tcpIdle: duration.optional(),
      })
      .strict()
      .optional(),
    retries: z
      .object({
        attempts: z.number().int().min(0).max(10).optional(),
        on: z
          .array(
            z.enum([
              'connect-failure',
              'refused-stream',
              '5xx',
              'gateway-error',
              'reset',
              'retriable-status-codes',
            ]),
          )
          .optional(),
        codes: z.array(z.number().int().min(400).max(599)).optional(),
        grpcStatuses: z
          .array(z.enum(['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']))
          .optional(),
        backoff: z
          .object({ base: duration.default(25), max: duration.default(250) })
          .strict()
          .optional(),
        budget: z
          .object({
            percent: percent.default(20),
            minPerSecond: z.number().min(0).default(10),
            window: duration.default(10_000),
          })
          .strict()
          .superRefine(buildable('retries.budget'))
          .optional(),
        retryNonIdempotent: z.boolean().optional(),
      })
      .strict()
      .optional(),
    connectionPool: z
      .object({
        maxConnections: z.number().int().min(1).optional(),
        maxPendingRequests: z.number().int().min(0).optional(),
        maxRequests: z.number().int().min(1).optional(),
        maxRetries: z.number().int().min(0).optional(),
      })
      .strict()
      .superRefine(buildable('connectionPool'))
      .optional(),
    circuitBreaker: z
      .object({
        enabled: z.boolean().default(true),
        window: duration.default(10_000),
        buckets: z.number().int().min(1).max(100).default(10),
        requestVolumeThreshold: z.number().int().min(1).default(20),
        errorThresholdPercent: percent.default(50),
        sleepWindow: duration.default(5000),
        slowCallDuration: duration.optional(),
        slowCallThresholdPercent: percent.default(100),
      })
      .strict()
      .superRefine(buildable('circuitBreaker'))
      .optional(),
    fallback: z
      .union([
        z
          .object({
            response: z
              .object({
                status: z.number().int().min(100).max(599).default(200),
                headers: z.record(z.string(), z.string()).optional(),
                body: z.string().default(''),
              })
              .strict(),
          })
          .strict(),
        z.object({ service: dnsLabel, port: port.optional() }).strict(),
      ])
      .optional(),
    outlierDetection: z
      .object({
        consecutive5xx: z.number().int().min(0).default(5),
        consecutiveGatewayErrors: z.number().int().min(0).default(5),
        interval: duration.default(10_000),
        baseEjectionTime: duration.default(30_000),
        maxEjectionTime: duration.default(300_000),
        maxEjectionPercent: percent.default(10),
        successRate: z
          .object({
            minHosts: z.number().int().min(1).default(5),
            requestVolume: z.number().int().min(1).default(100),
            stdevFactor: z.number().min(0).default(1.9),
          })
          .strict()
          .optional(),
      })
      .strict()
      .superRefine(buildable('outlierDetection'))
      .optional(),
    healthCheck: z
      .object({
        type: z.enum(['http', 'tcp', 'grpc']),
        path: z.string().default('/health'),
        grpcService: z.string().default(''),
        interval: duration.default(10_000),
        timeout: duration.default(1000),
        healthyThreshold: z.number().int().min(1).default(1),
        unhealthyThreshold: z.number().int().min(1).default(3),
      })
      .strict()
      .superRefine(buildable('healthCheck'))
      .optional(),
    rateLimit: z
      .object({
        /** Token bucket: maxTokens, refilled by tokensPerFill every fillInterval (Envoy local_ratelimit). */
        maxTokens: z.number().int().min(1),
        tokensPerFill: z.number().int().min(1).default(1),
        fillInterval: duration.default(1000),
      })
      .strict()
      .optional(),
    faults: z
      .object({
        delay: z.object({ percent, duration }).strict().optional(),
        abort: z
          .object({
            percent,
            status: z.number().int().min(200).max(599).default(503),
            grpcStatus: z.number().int().min(0).max(16).optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export const trafficPolicySchema = z
  .object({
    apiVersion: z.literal('hexmesh.io/v1alpha1'),
    kind: z.literal('TrafficPolicy'),
    metadata,
    spec: trafficPolicySpecSchema,
  })
  .strict();

// ---------- Security: AuthorizationPolicy, RequestAuthentication (Istio's shape) ----------
/** `exact`, `prefix*`, `*suffix` or `*` (Istio's string match); a `*` anywhere else is refused. */
const stringPattern = z
  .string()
  .min(1)
  .refine((s) => s === '*' || (!s.slice(1, -1).includes('*') && !(s.startsWith('*') && s.endsWith('*'))), {
    message: 'a pattern is exact, prefix*, *suffix or * (one * at the start or the end)',
  });
const pathPattern = stringPattern.refine((s) => s.startsWith('/') || s.startsWith('*'), {
  message: 'a path pattern starts with / or *',
});
const ipBlock = z.string().refine(
  (s) => {
    const [ip, bits, extra] = s.split('/');
    const v = isIP(ip);
    if (v === 0 || extra !== undefined) return false;
    if (bits === undefined) return true;
    const n = Number(bits);
    return /^\d+$/.test(bits) && n <= (v === 4 ? 32 : 128);
  },
  { message: 'must be an IP address or CIDR block (10.0.0.0/8, ::1/128)' },
);
const WHEN_KEY =
  /^(request\.headers\[[A-Za-z0-9!#$%&'*+.^_`|~-]+\]|request\.auth\.claims(\[[^[\]]+\])+|source\.ip|remote\.ip|source\.principal|source\.namespace|request\.auth\.principal|request\.auth\.audiences|request\.auth\.presenter|destination\.port)$/;
const securityTargetRef = z
  .object({ group: z.string().optional(), kind: z.literal('Service').default('Service'), name: dnsLabel })
  .strict();

export const authorizationSourceSchema = z
  .object({
    /** SPIFFE IDs of the peer (`spiffe://td/ns/x/sa/y`, globs, `unauthenticated` for no identity). */
    principals: z.array(stringPattern).optional(),
    notPrincipals: z.array(stringPattern).optional(),
    namespaces: z.array(stringPattern).optional(),
    notNamespaces: z.array(stringPattern).optional(),
    ipBlocks: z.array(ipBlock).optional(),
    notIpBlocks: z.array(ipBlock).optional(),
    /** `<iss>/<sub>` of a validated JWT (RequestAuthentication). */
    requestPrincipals: z.array(stringPattern).optional(),
    notRequestPrincipals: z.array(stringPattern).optional(),
  })
  .strict();

const method = z
  .string()
  .regex(/^[A-Za-z]+$/, 'a method is letters only')
  .transform((m) => m.toUpperCase());

export const authorizationOperationSchema = z
  .object({
    methods: z.array(method).optional(),
    notMethods: z.array(method).optional(),
    paths: z.array(pathPattern).optional(),
    notPaths: z.array(pathPattern).optional(),
    ports: z.array(z.union([port, z.string().regex(/^\d+$/).transform(Number)])).optional(),
    notPorts: z.array(z.union([port, z.string().regex(/^\d+$/).transform(Number)])).optional(),
    hosts: z.array(stringPattern).optional(),
    notHosts: z.array(stringPattern).optional(),
  })
  .strict();

export const authorizationConditionSchema = z
  .object({
    key: z.string().regex(WHEN_KEY, 'unknown key (request.headers[x], request.auth.claims[c], source.ip, …)'),
    values: z.array(z.string()).optional(),
    notValues: z.array(z.string()).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!c.values?.length && !c.notValues?.length)
      ctx.addIssue({ code: 'custom', message: 'a condition needs values or notValues' });
    if (c.key === 'source.ip' || c.key === 'remote.ip')
      for (const [field, list] of [
        ['values', c.values],
        ['notValues', c.notValues],
      ] as const)
        list?.forEach((v, i) => {
          if (!ipBlock.safeParse(v).success)
            ctx.addIssue({
              code: 'custom',
              path: [field, i],
              message: 'must be an IP address or CIDR block',
            });
        });
  });

export const authorizationRuleSchema = z
  .object({
    from: z.array(z.object({ source: authorizationSourceSchema }).strict()).optional(),
    to: z.array(z.object({ operation: authorizationOperationSchema }).strict()).optional(),
    when: z.array(authorizationConditionSchema).optional(),
  })
  .strict();

/** Istio's AuthorizationPolicy, enforced by the inbound sidecar (docs/authorization.md). */
export const authorizationPolicySchema = z
  .object({
    apiVersion: z.literal('hexmesh.io/v1alpha1'),
    kind: z.literal('AuthorizationPolicy'),
    metadata,
    spec: z
      .object({
        /** The Service whose workloads enforce it; absent: every workload in the policy's namespace. */
        targetRef: securityTargetRef.optional(),
        action: z.enum(['ALLOW', 'DENY', 'AUDIT']).default('ALLOW'),
        /** ALLOW with no rules allows nothing; DENY/AUDIT with no rules match nothing (as Istio). */
        rules: z.array(authorizationRuleSchema).default([]),
      })
      .strict(),
  })
  .strict();

const jwksDocument = z.string().superRefine((s, ctx) => {
  try {
    const doc = JSON.parse(s) as { keys?: unknown };
    if (!Array.isArray(doc?.keys)) ctx.addIssue({ code: 'custom', message: 'a JWKS is {"keys": [...]}' });
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `invalid JWKS JSON: ${(e as Error).message}` });
  }
});

export const jwtRuleSchema = z
  .object({
    issuer: z.string().min(1),
    /** Accepted `aud` values; absent: any audience. */
    audiences: z.array(z.string().min(1)).optional(),
    /** Inline JWKS (JSON text). */
    jwks: jwksDocument.optional(),
    /** JWKS URL, fetched and cached (refetched on an unknown `kid`, at most once per 30 s). */
    jwksUri: z.url({ protocol: /^https?$/ }).optional(),
    /** Where the token is; default `Authorization: Bearer <token>`. */
    fromHeaders: z.array(z.object({ name: headerName, prefix: z.string().default('') }).strict()).optional(),
    /** Keep the token header for the app (default: it is removed once validated). */
    forwardOriginalToken: z.boolean().default(false),
  })
  .strict()
  .refine((r) => (r.jwks === undefined) !== (r.jwksUri === undefined), {
    message: 'set exactly one of jwks and jwksUri',
  });

/** Istio's RequestAuthentication: which JWTs an inbound sidecar accepts. */
export const requestAuthenticationSchema = z
  .object({
    apiVersion: z.literal('hexmesh.io/v1alpha1'),
    kind: z.literal('RequestAuthentication'),
    metadata,
    spec: z
      .object({
        targetRef: securityTargetRef.optional(),
        jwtRules: z.array(jwtRuleSchema).min(1),
      })
      .strict(),
  })
  .strict();

/**
 * Istio's PeerAuthentication, reduced to the mode: STRICT (the inbound sidecar accepts only
 * mutual TLS) or PERMISSIVE (mTLS and plaintext, for migration). Without targetRef/selector
 * it applies to every workload of its namespace; a service-level one wins (docs/mtls.md).
 */
export const peerAuthenticationSchema = z
  .object({
    apiVersion: z.literal('hexmesh.io/v1alpha1'),
    kind: z.literal('PeerAuthentication'),
    metadata,
    spec: z
      .object({
        targetRef: securityTargetRef.optional(),
        /** `{service: <name>}`: the same as targetRef, in selector form. */
        selector: z.object({ service: dnsLabel }).strict().optional(),
        mode: z.enum(['STRICT', 'PERMISSIVE']),
      })
      .strict()
      .refine((s) => !(s.targetRef && s.selector), { message: 'set at most one of targetRef and selector' }),
  })
  .strict();

// ---------- Rollout ----------
const rolloutWebhook = z
  .object({
    name: z.string().optional(),
    type: z.enum(['pre-rollout', 'rollout', 'confirm-promotion', 'post-rollout', 'rollback']),
    url: z.string().url(),
    timeout: duration.default(10_000),
    metadata: z.record(z.string(), z.string()).optional(),
  })
  .strict();

/** What analysis checks, every `interval`, against the new revision's own traffic. */
export const rolloutAnalysisSchema = z
  .object({
    /** Success rate (0..100, percent) at least this. */
    successRate: z
      .object({ min: z.number().min(0).max(100) })
      .strict()
      .optional(),
    /** p99 latency at most this. */
    p99: z.object({ max: duration }).strict().optional(),
    /** Requests the new revision must have served in the interval (no traffic = the check fails). */
    minRequests: z.number().int().min(0).default(1),
    /** Failed checks (in total) before rolling back. */
    threshold: z.number().int().min(1).default(1),
    /** Analysis runs this many intervals in an `analysis` step (default 1). */
    iterations: z.number().int().min(1).default(1),
    webhooks: z.array(rolloutWebhook).default([]),
  })
  .strict();

const rolloutStep = z
  .object({
    setWeight: z.number().int().min(0).max(100).optional(),
    /** Without duration: wait for `hexmesh rollout promote` (or resume). */
    pause: z.object({ duration: duration.optional() }).strict().optional(),
    analysis: rolloutAnalysisSchema.partial().optional(),
  })
  .strict()
  .refine((s) => [s.setWeight, s.pause, s.analysis].filter((v) => v !== undefined).length === 1, {
    message: 'a step sets exactly one of setWeight, pause, analysis',
  });

/**
 * A progressive delivery of a new revision of one service (semantics: Flagger / Argo
 * Rollouts). Read by the rollout controller (src/rollout/); not sent to proxies.
 */
export const rolloutSchema = z
  .object({
    apiVersion: z.literal('hexmesh.io/v1alpha1'),
    kind: z.literal('Rollout'),
    metadata,
    spec: z
      .object({
        /** The service whose traffic moves (its instances are the stable revision). */
        service: dnsLabel,
        /**
         * On Kubernetes: the Deployment whose pod template is the revision to run
         * (src/control/kubernetes/deployment-rollouts.ts); in place of `template`.
         */
        workloadRef: z
          .object({
            apiVersion: z.literal('apps/v1').default('apps/v1'),
            kind: z.literal('Deployment').default('Deployment'),
            name: dnsLabel,
          })
          .strict()
          .optional(),
        /** The revision to run: new instances from this template, never changes to running ones. */
        template: z
          .object({
            command: z.string().min(1),
            args: z.array(z.string()).default([]),
            env: z.record(z.string(), z.string()).default({}),
            cwd: z.string().optional(),
            labels: z.record(z.string(), z.string()).default({}),
            replicas: z.number().int().min(1).max(100).default(1),
            port: z.union([port, z.literal('auto')]).default('auto'),
            healthCheck: z
              .discriminatedUnion('type', [
                z.object({ type: z.literal('http'), path: z.string().default('/') }).strict(),
                z.object({ type: z.literal('tcp') }).strict(),
                z.object({ type: z.literal('grpc') }).strict(),
              ])
              .optional(),
          })
          .strict()
          .optional(),
        strategy: z
          .object({
            canary: z
              .object({
                steps: z.array(rolloutStep).optional(),
                stepWeight: z.number().int().min(1).max(100).optional(),
                maxWeight: z.number().int().min(1).max(100).optional(),
                interval: duration.default(60_000),
                analysis: rolloutAnalysisSchema.optional(),
              })
              .strict()
              .refine((c) => !(c.steps && c.stepWeight), {
                message: 'set steps or stepWeight/maxWeight, not both',
              }),
            blueGreen: z
              .object({
                previewService: dnsLabel.optional(),
                autoPromote: z.boolean().default(true),
                scaleDownDelay: duration.default(30_000),
                analysis: rolloutAnalysisSchema.optional(),
                interval: duration.default(60_000),
              })
              .strict(),
          })
          .partial()
          .strict()
          .refine((s) => (s.canary ? 1 : 0) + (s.blueGreen ? 1 : 0) === 1, {
            message: 'set exactly one of canary, blueGreen',
          }),
        /** The new revision must be healthy within this, or the rollout fails (stable untouched). */
        progressDeadline: duration.default(600_000),
      })
      .strict()
      .refine((s) => (s.template ? 1 : 0) + (s.workloadRef ? 1 : 0) === 1, {
        message: 'set exactly one of template (local processes), workloadRef (a Kubernetes Deployment)',
      }),
  })
  .strict();

/** Every resource kind the proxy's snapshot understands; later issues add more kinds here. */
export const resourceSchema = z.discriminatedUnion('kind', [
  serviceSchema,
  httpRouteSchema,
  grpcRouteSchema,
  trafficPolicySchema,
  authorizationPolicySchema,
  requestAuthenticationSchema,
  peerAuthenticationSchema,
  rolloutSchema,
]);

export type ServiceResource = z.infer<typeof serviceSchema>;
export type HTTPRoute = z.infer<typeof httpRouteSchema>;
export type HTTPRouteRule = HTTPRoute['spec']['rules'][number];
export type HTTPRouteMatch = z.infer<typeof httpRouteMatchSchema>;
export type HTTPRouteFilter = z.infer<typeof httpFilterSchema>;
export type GRPCRoute = z.infer<typeof grpcRouteSchema>;
export type GRPCRouteRule = GRPCRoute['spec']['rules'][number];
export type TrafficPolicy = z.infer<typeof trafficPolicySchema>;
export type TrafficPolicySpec = z.infer<typeof trafficPolicySpecSchema>;
export type AuthorizationPolicy = z.infer<typeof authorizationPolicySchema>;
export type AuthorizationRule = z.infer<typeof authorizationRuleSchema>;
export type RequestAuthentication = z.infer<typeof requestAuthenticationSchema>;
export type JwtRule = z.infer<typeof jwtRuleSchema>;
export type PeerAuthentication = z.infer<typeof peerAuthenticationSchema>;
export type Rollout = z.infer<typeof rolloutSchema>;
export type RolloutAnalysis = z.infer<typeof rolloutAnalysisSchema>;
export type Resource = z.infer<typeof resourceSchema>;
export { regex as regexSchema };
