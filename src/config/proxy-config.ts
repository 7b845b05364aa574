/**
 * The proxy's configuration: a snapshot of the mesh model (this proxy's listeners, the
 * services it may call with their endpoints, and the routes and policies that apply).
 * A static file today; the control plane feeds the same shape dynamically.
 */
import { z } from 'zod';
import { duration, resourceSchema } from './resources.ts';

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);
const address = z.object({ address: host, port }).strict();
/**
 * Service and namespace names are DNS-1123 labels, as Kubernetes': a Host header names a
 * service as `<name>.<namespace>...`, lower-cased, so an upper-case or dotted name could
 * never be reached.
 */
const dnsLabel = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
    'must be a DNS-1123 label (1-63 lower-case letters, digits or -, starting and ending with a letter or digit)',
  );

export const endpointSchema = z
  .object({
    address: host,
    /** The port of the destination's inbound sidecar listener (or the app itself for a mesh-less endpoint). */
    port: port.refine((p) => p > 0, 'endpoint port must be 1..65535'),
    labels: z.record(z.string(), z.string()).default({}),
    weight: z.number().int().min(1).max(1_000_000).default(1),
    /** Health as known from the catalog; only passing (and warning) endpoints take traffic. */
    health: z.enum(['passing', 'warning', 'critical']).default('passing'),
    /** false: the endpoint is a plain app with no sidecar (registered by hand); traffic goes to it directly. */
    meshed: z.boolean().default(true),
    /**
     * The SPIFFE ID the endpoint's sidecar must present under mTLS (from discovery). Absent:
     * `spiffe://<our trust domain>/ns/<namespace>/sa/<service>` (docs/mtls.md).
     */
    identity: z
      .string()
      .regex(/^spiffe:\/\/[^/]+\/.+$/, 'identity must be a SPIFFE ID (spiffe://<trust-domain>/...)')
      .optional(),
  })
  .strict();

export const meshServiceSchema = z
  .object({
    name: dnsLabel,
    namespace: dnsLabel.default('default'),
    ports: z
      .array(
        z
          .object({
            name: z.string().optional(),
            port,
            protocol: z.enum(['http', 'http2', 'grpc', 'tcp', 'opaque']).default('http'),
          })
          .strict(),
      )
      .default([{ port: 80, protocol: 'http' }]),
    /**
     * The service's virtual addresses (a Kubernetes Service's cluster IPs): under transparent
     * capture a connection to `<address>:<port>` goes to this service (docs/kubernetes.md).
     */
    addresses: z.array(z.union([z.ipv4(), z.ipv6()])).default([]),
    endpoints: z.array(endpointSchema).default([]),
    /**
     * The inbound mTLS mode the destination's own sidecars enforce (from discovery). Under
     * STRICT, an endpoint without a sidecar (`meshed: false`) is never chosen: it would be
     * sent plaintext, to whoever registered it.
     */
    mtls: z.enum(['STRICT', 'PERMISSIVE']).optional(),
  })
  .strict();

export const proxySettingsSchema = z
  .object({
    /** The service this proxy's workload belongs to. */
    service: dnsLabel,
    namespace: dnsLabel.default('default'),
    outbound: address.default({ address: '127.0.0.1', port: 4140 }),
    inbound: address.default({ address: '0.0.0.0', port: 4143 }),
    admin: address.default({ address: '127.0.0.1', port: 4191 }),
    /** The local app, target of inbound traffic. Without it the proxy is outbound-only (a job or a client). */
    app: z
      .object({
        host: host.default('127.0.0.1'),
        port: port.refine((p) => p > 0, 'app port must be 1..65535'),
        protocol: z.enum(['http', 'http2', 'grpc', 'tcp', 'opaque']).default('http'),
      })
      .strict()
      .optional(),
    /** Per-upstream local ports on the outbound side: any protocol, opaque TCP included. */
    upstreams: z
      .array(z.object({ service: dnsLabel, localPort: port, address: host.default('127.0.0.1') }).strict())
      .default([]),
    /**
     * Transparent capture (docs/kubernetes.md, "Transparent capture"): the listeners receive
     * connections redirected by `hexmesh capture`'s rules and read each one's original
     * destination. `outboundTrafficPolicy` decides a connection to an address that is no mesh
     * service: `ALLOW_ANY` passes it through to where it was going, `REGISTRY_ONLY` closes it
     * (Istio's outboundTrafficPolicy).
     */
    capture: z
      .object({ outboundTrafficPolicy: z.enum(['ALLOW_ANY', 'REGISTRY_ONLY']).default('ALLOW_ANY') })
      .strict()
      .optional(),
    /** Inbound ports that skip protocol detection (server-first protocols such as MySQL). */
    opaquePorts: z.array(port).default([]),
    detectTimeout: duration.default(1000),
    /** Time for a client to finish sending request headers (slowloris protection). */
    headerTimeout: duration.default(10_000),
    maxHeaderSize: z
      .number()
      .int()
      .min(1024)
      .max(1 << 20)
      .default(16 * 1024),
    /**
     * HTTP/2 from clients: SETTINGS_MAX_CONCURRENT_STREAMS advertised on each connection, and
     * the streams of one connection the proxy works on at once (docs/security.md).
     */
    maxConcurrentStreams: z.number().int().min(1).max(10_000).default(100),
    /**
     * Client connections open at once on all listeners together (each costs a file
     * descriptor, two when forwarded); over it a new connection is closed at accept.
     */
    maxDownstreamConnections: z.number().int().min(1).max(1_000_000).default(8192),
    /**
     * Client connections open at once from one source address, and from one mTLS peer
     * identity: one client cannot take every connection (docs/security.md).
     */
    maxConnectionsPerClient: z.number().int().min(1).max(1_000_000).default(1024),
    /** Downstream keep-alive idle timeout. */
    idleTimeout: duration.default(300_000),
    drainTimeout: duration.default(30_000),
    /**
     * Longest wait for the local app's response headers on the inbound side (0 = no limit).
     * Default 5 min, the stream idle timeout: callers' route timeouts (15 s by default) are
     * shorter and fire first; this only bounds an app that never answers.
     */
    inboundTimeout: duration.default(300_000),
    /** JSON access log: off, stdout, or a file path. */
    accessLog: z.union([z.literal(false), z.literal('stdout'), z.string().min(1)]).default(false),
    /**
     * Mutual TLS from files (static meshes, tests): the workload certificate chain, its key and
     * the trust bundle; `mode` is the inbound mode when no PeerAuthentication applies
     * (docs/mtls.md). With `--control`, the identity comes from the control plane instead.
     */
    tls: z
      .object({
        certFile: z.string().min(1),
        keyFile: z.string().min(1),
        bundleFile: z.string().min(1),
        mode: z.enum(['STRICT', 'PERMISSIVE']).default('PERMISSIVE'),
      })
      .strict()
      .optional(),
    /**
     * SPIFFE trust domains besides the mesh's own (the one in this proxy's certificate) whose
     * workloads may connect to the inbound listener over mTLS; their roots must be in the
     * trust bundle. Empty: only the mesh's own trust domain (docs/mtls.md, "Peer identity").
     */
    federatedTrustDomains: z
      .array(
        z
          .string()
          .regex(
            /^[a-z0-9._-]{1,255}$/,
            'must be a SPIFFE trust domain (lower-case letters, digits, ., -, _)',
          ),
      )
      .default([]),
    /** Transport between sidecars for HTTP/1 traffic (see docs/proxy.md, "Transport between sidecars"). */
    hopTransport: z.enum(['http1', 'http2']).default('http1'),
    /**
     * Distributed tracing (docs/observability.md, "Tracing"). Absent: off, trace headers pass
     * through untouched and no span is made.
     */
    tracing: z
      .object({
        /** OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
        endpoint: z.url({ protocol: /^https?$/ }),
        /** Share of new traces sampled (0..1); a parent's sampled flag always wins. */
        sampleRate: z.number().min(0).max(1).default(0.01),
        /** `service.name` of the spans (default: proxy.service). */
        serviceName: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export const proxyConfigSchema = z
  .object({
    apiVersion: z.literal('hexmesh.io/v1alpha1').default('hexmesh.io/v1alpha1'),
    kind: z.literal('ProxyConfig').default('ProxyConfig'),
    /** Monotonic snapshot version (from the control plane; 0 for a static file). */
    version: z.number().int().min(0).default(0),
    proxy: proxySettingsSchema,
    services: z.array(meshServiceSchema).default([]),
    resources: z.array(resourceSchema).default([]),
  })
  .strict()
  .superRefine((c, ctx) => {
    // Each of these would otherwise be silently "last wins" or fail after the ready line.
    const services = new Map<string, number>();
    c.services.forEach((s, i) => {
      const key = `${s.namespace}/${s.name}`;
      const prev = services.get(key);
      if (prev !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['services', i, 'name'],
          message: `service ${key} is also services[${prev}]; list each service once, with all its endpoints`,
        });
      else services.set(key, i);
    });
    const upstreams = new Map<string, number>();
    const localPorts = new Map<string, number>();
    c.proxy.upstreams.forEach((u, i) => {
      const prev = upstreams.get(u.service);
      if (prev !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['proxy', 'upstreams', i, 'service'],
          message: `${u.service} already has a local port (proxy.upstreams[${prev}]); one upstream per service`,
        });
      else upstreams.set(u.service, i);
      if (u.localPort === 0) return;
      const at = `${u.address}:${u.localPort}`;
      const clash = localPorts.get(at);
      if (clash !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['proxy', 'upstreams', i, 'localPort'],
          message: `${at} is also proxy.upstreams[${clash}]'s local port`,
        });
      else localPorts.set(at, i);
    });
  });

export type ProxyConfig = z.infer<typeof proxyConfigSchema>;
export type ProxySettings = ProxyConfig['proxy'];
export type MeshService = z.infer<typeof meshServiceSchema>;
export type Endpoint = z.infer<typeof endpointSchema>;
