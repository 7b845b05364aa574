/**
 * Sidecar injection: a mutating admission webhook that adds the hexmesh proxy to a Pod as a
 * native sidecar (an init container with `restartPolicy: Always`, Kubernetes 1.29+: it
 * starts before the app's containers and stops after them).
 *
 * Who is injected (as Istio): Pods in a namespace labelled `hexmesh.io/inject=enabled`, or
 * Pods labelled so themselves — the MutatingWebhookConfiguration's selectors
 * (`webhookConfiguration`) send only those here — less those annotated
 * `hexmesh.io/inject: "false"`. A Pod that already has the proxy is left as it is, so a
 * re-invocation (`reinvocationPolicy`, a retried create) never adds a second one.
 *
 * Transparent capture: a second init container, `hexmesh-capture`, runs `hexmesh capture` (root,
 * NET_ADMIN) to write the nat rules that send the pod's TCP through the proxy (the proxy's uid
 * excluded), and the proxy runs with `--capture` to route by each connection's original
 * destination. Opt out per pod with the annotation `hexmesh.io/capture: "false"` (the app then
 * sends to the proxy's outbound listener itself); exclusions by annotation (CAPTURE_*).
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { captureOptions } from '../../proxy/capture/iptables-rules.ts';

export const INJECT_LABEL = 'hexmesh.io/inject';
export const INJECTED_ANNOTATION = 'hexmesh.io/injected';
export const SERVICE_ANNOTATION = 'hexmesh.io/service';
export const APP_PORT_ANNOTATION = 'hexmesh.io/app-port';
export const PROXY_CONTAINER = 'hexmesh-proxy';
export const CAPTURE_CONTAINER = 'hexmesh-capture';
/** `"false"`: no capture rules; the app dials the proxy's outbound listener itself. */
export const CAPTURE_ANNOTATION = 'hexmesh.io/capture';
/** Comma-separated ports / CIDRs passed to `hexmesh capture` (as Istio's traffic.sidecar.istio.io/*). */
export const CAPTURE_EXCLUDE_ANNOTATIONS = {
  excludeInboundPorts: 'hexmesh.io/exclude-inbound-ports',
  excludeOutboundPorts: 'hexmesh.io/exclude-outbound-ports',
  excludeOutboundCidrs: 'hexmesh.io/exclude-outbound-cidrs',
} as const;
/** `ALLOW_ANY` (default) or `REGISTRY_ONLY`: where captured connections to non-mesh addresses go. */
export const OUTBOUND_POLICY_ANNOTATION = 'hexmesh.io/outbound-traffic-policy';
/**
 * V8's young-generation limit for the proxy, in MiB per semi-space (an integer, 1 to 16):
 * `node --max-semi-space-size`, passed through NODE_OPTIONS. Absent, V8's default applies (it
 * grows up to 16 MiB under load). Measured (docs/benchmark.md, "Young generation"): `1` keeps a
 * sidecar serving HTTP/1.1 ~6 MiB smaller after load at no measurable CPU cost, and one serving
 * HTTP/2 or gRPC ~20 MiB smaller at 10–16 % more CPU. A value out of range refuses the Pod.
 */
export const PROXY_SEMI_SPACE_ANNOTATION = 'hexmesh.io/proxy-semi-space-mib';
export const MAX_SEMI_SPACE_MIB = 16;
/** The proxy's uid: the capture rules exclude it, so its own traffic is not redirected back to it. */
export const PROXY_UID = 2102;
export const INBOUND_PORT = 4143;
/**
 * The projected ServiceAccount token the proxy proves its identity with (audience `hexmesh`,
 * checked by TokenReview: token-review.ts); the kubelet rewrites it before it expires and the
 * proxy re-reads it at each certificate request (`--token-file`).
 */
export const TOKEN_VOLUME = 'hexmesh-token';
export const TOKEN_DIR = '/var/run/secrets/hexmesh';
export const TOKEN_AUDIENCE = 'hexmesh';
export const OUTBOUND_PORT = 4140;
export const ADMIN_PORT = 4191;
/** The proxy's own ports: an app port naming one would loop the proxy into itself. */
const PROXY_PORTS: ReadonlyMap<number, string> = new Map([
  [INBOUND_PORT, 'inbound listener'],
  [OUTBOUND_PORT, 'outbound listener'],
  [ADMIN_PORT, 'admin listener'],
]);
/** Entries one exclusion annotation may list (each is an iptables rule in the Pod). */
export const MAX_CAPTURE_EXCLUSIONS = 64;
/** An AdmissionReview of a Pod is well under this (the API server stores objects to 1.5 MiB). */
export const MAX_REVIEW_BYTES = 4 * 1024 * 1024;
/**
 * Request bytes the webhook holds at once, all requests together (eight reviews at the limit;
 * a real one is a few KiB). Past it a request is answered 503 and not read: the API server
 * counts that as a call failure (failurePolicy), and the heap stays bounded however many
 * connections send at once.
 */
export const MAX_BUFFERED_BYTES = 8 * MAX_REVIEW_BYTES;

export interface InjectorOptions {
  /** The proxy image (`hexmesh` package installed, `hexmesh` on PATH). */
  image: string;
  /** Control plane URL(s) the proxy connects to. */
  control: readonly string[];
  /** The value of INJECTED_ANNOTATION (the mesh version). */
  version: string;
  /** A request the webhook failed on for a reason of its own (it answers allowed: false). */
  onError?(err: unknown): void;
}

interface Container {
  name: string;
  ports?: { containerPort?: number; name?: string; protocol?: string }[];
  [k: string]: unknown;
}

export interface Pod {
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: {
    containers?: Container[];
    initContainers?: Container[];
    serviceAccountName?: string;
    hostNetwork?: boolean;
    volumes?: { name: string; [k: string]: unknown }[];
  };
}

/**
 * What the injector reads of a Pod, checked before anything reads it: an AdmissionReview sent
 * straight to the webhook's port may carry anything (a number where a list was, a null
 * container), and a throw in the request handler used to end the control plane's process.
 * Loose objects: every other field of the Pod is left as it is.
 */
const containerSchema = z.looseObject({
  name: z.string(),
  ports: z
    .array(
      z.looseObject({
        containerPort: z.number().int().optional(),
        name: z.string().optional(),
        protocol: z.string().optional(),
      }),
    )
    .optional(),
});
const podSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.literal('Pod').optional(),
  metadata: z
    .looseObject({
      name: z.string().optional(),
      generateName: z.string().optional(),
      namespace: z.string().optional(),
      labels: z.record(z.string(), z.string()).optional(),
      annotations: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
  spec: z
    .looseObject({
      containers: z.array(containerSchema).optional(),
      initContainers: z.array(containerSchema).optional(),
      serviceAccountName: z.string().optional(),
      hostNetwork: z.boolean().optional(),
      volumes: z.array(z.looseObject({ name: z.string() })).optional(),
    })
    .optional(),
});
const reviewSchema = z.object({
  apiVersion: z.literal('admission.k8s.io/v1'),
  kind: z.literal('AdmissionReview'),
  request: z.looseObject({
    uid: z.string().min(1),
    kind: z.looseObject({ kind: z.string() }),
    operation: z.string().optional(),
    object: z.unknown(),
  }),
});

/** `path: reason` of a schema's first few issues, for a refusal message. */
function issues(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
    .join('; ');
}

type PatchOp = { op: 'add' | 'replace'; path: string; value: unknown };

/** JSON Patch escaping of one path segment (RFC 6901). */
const seg = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** A Pod the injector refuses to admit, and why (the API server shows the message to its creator). */
export class InjectionRefused extends Error {}

/** Refuse `raw` as the value of annotation `key`, quoting at most 64 characters of it. */
function refuse(key: string, expected: string, raw: string): never {
  const shown = JSON.stringify(raw.slice(0, 64)) + (raw.length > 64 ? ` (${raw.length} characters)` : '');
  throw new InjectionRefused(`annotation ${key}: expected ${expected}, got ${shown}`);
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The service a Pod belongs to: annotation, then the usual app labels, then its name's stem.
 * The annotation is taken as written or refused; labels and names are made a DNS label.
 * @throws InjectionRefused for an annotation that is not a DNS label.
 */
export function podService(pod: Pod): string {
  const m = pod.metadata ?? {};
  const annotated = m.annotations?.[SERVICE_ANNOTATION];
  if (annotated !== undefined) {
    if (!DNS_LABEL.test(annotated))
      refuse(SERVICE_ANNOTATION, 'a DNS label (a-z, 0-9 and -, at most 63 characters)', annotated);
    return annotated;
  }
  const name =
    m.labels?.['app.kubernetes.io/name'] ??
    m.labels?.app ??
    (m.generateName ?? m.name ?? 'app').replace(/-[a-z0-9]{5,10}(-[a-z0-9]{5})?-?$/, '').replace(/-$/, '');
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .slice(0, 63)
      .replace(/^-+|-+$/g, '') || 'app'
  );
}

/**
 * The app's port: the annotation, else the first TCP containerPort of the first container.
 * @throws InjectionRefused for an annotation that is not a port, or a port of the proxy's own.
 */
export function podAppPort(pod: Pod): number | undefined {
  const raw = pod.metadata?.annotations?.[APP_PORT_ANNOTATION];
  if (raw !== undefined) {
    const n = Number(raw.trim());
    if (!/^[0-9]{1,5}$/.test(raw.trim()) || n < 1 || n > 65535)
      refuse(APP_PORT_ANNOTATION, 'a port number from 1 to 65535', raw);
    const proxy = PROXY_PORTS.get(n);
    if (proxy)
      throw new InjectionRefused(
        `annotation ${APP_PORT_ANNOTATION}: ${n} is the proxy's ${proxy}; the app must listen on another port`,
      );
    return n;
  }
  for (const c of pod.spec?.containers ?? [])
    for (const p of c.ports ?? [])
      if ((p.protocol ?? 'TCP') === 'TCP' && p.containerPort) {
        const proxy = PROXY_PORTS.get(p.containerPort);
        if (proxy)
          throw new InjectionRefused(
            `container ${c.name} port ${p.containerPort} is the proxy's ${proxy}; the app must listen on ` +
              `another port (or name it with annotation ${APP_PORT_ANNOTATION})`,
          );
        return p.containerPort;
      }
  return undefined;
}

/** Why a Pod is not injected, or undefined when it is. */
export function skipReason(pod: Pod): string | undefined {
  if (pod.metadata?.annotations?.[INJECT_LABEL] === 'false') return `annotation ${INJECT_LABEL}: "false"`;
  if (pod.metadata?.labels?.[INJECT_LABEL] === 'disabled') return `label ${INJECT_LABEL}=disabled`;
  // As Istio and Linkerd: in the node's network namespace the capture container (root,
  // NET_ADMIN) would rewrite the node's own nat table, and the proxy would take node ports.
  if (pod.spec?.hostNetwork === true)
    return "hostNetwork: the capture rules would apply to the node's own network";
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  if (all.some((c) => c.name === PROXY_CONTAINER || c.name === CAPTURE_CONTAINER)) return 'already injected';
  return undefined;
}

/**
 * The proxy's semi-space limit from PROXY_SEMI_SPACE_ANNOTATION, or undefined when unset.
 * @throws InjectionRefused for anything but an integer from 1 to MAX_SEMI_SPACE_MIB.
 */
export function proxySemiSpaceMiB(pod: Pod): number | undefined {
  const raw = pod.metadata?.annotations?.[PROXY_SEMI_SPACE_ANNOTATION];
  if (raw === undefined) return undefined;
  const v = raw.trim();
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n < 1 || n > MAX_SEMI_SPACE_MIB)
    refuse(PROXY_SEMI_SPACE_ANNOTATION, `a whole number of MiB from 1 to ${MAX_SEMI_SPACE_MIB}`, raw);
  return n;
}

/** The proxy container. */
export function proxyContainer(pod: Pod, opts: InjectorOptions): Record<string, unknown> {
  const appPort = podAppPort(pod);
  const semiSpace = proxySemiSpaceMiB(pod);
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  return {
    name: PROXY_CONTAINER,
    image: opts.image,
    restartPolicy: 'Always',
    args: [
      'proxy',
      '--control',
      opts.control.join(','),
      '--service',
      podService(pod),
      '--namespace',
      '$(HEXMESH_NAMESPACE)',
      '--id',
      '$(HEXMESH_POD_NAME)',
      '--advertise',
      '$(HEXMESH_POD_IP)',
      '--inbound',
      `0.0.0.0:${INBOUND_PORT}`,
      '--label',
      'hexmesh.io/pod=$(HEXMESH_POD_NAME)',
      '--token-file',
      `${TOKEN_DIR}/token`,
      ...(appPort ? ['--app-port', String(appPort)] : []),
      ...(captured(pod) ? ['--capture', '--outbound-traffic-policy', outboundPolicy(pod)] : []),
    ],
    env: [
      fieldEnv('HEXMESH_POD_NAME', 'metadata.name'),
      fieldEnv('HEXMESH_NAMESPACE', 'metadata.namespace'),
      fieldEnv('HEXMESH_POD_IP', 'status.podIP'),
      fieldEnv('HEXMESH_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
      ...(semiSpace ? [{ name: 'NODE_OPTIONS', value: `--max-semi-space-size=${semiSpace}` }] : []),
    ],
    ports: [{ name: 'hexmesh-inbound', containerPort: INBOUND_PORT, protocol: 'TCP' }],
    volumeMounts: [{ name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true }],
    resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
  };
}

/** @throws InjectionRefused for anything but "true" or "false". */
function captured(pod: Pod): boolean {
  const v = pod.metadata?.annotations?.[CAPTURE_ANNOTATION];
  if (v === undefined || v === 'true') return true;
  if (v === 'false') return false;
  refuse(CAPTURE_ANNOTATION, '"true" or "false"', v);
}

/** @throws InjectionRefused for another value: a typo must not mean the permissive policy. */
function outboundPolicy(pod: Pod): string {
  const v = pod.metadata?.annotations?.[OUTBOUND_POLICY_ANNOTATION];
  if (v === undefined) return 'ALLOW_ANY';
  if (v === 'ALLOW_ANY' || v === 'REGISTRY_ONLY') return v;
  refuse(OUTBOUND_POLICY_ANNOTATION, 'ALLOW_ANY or REGISTRY_ONLY', v);
}

/**
 * One exclusion annotation as the capture command's argument: each entry checked by the rule
 * `hexmesh capture` applies (iptables-rules.ts), written back comma-separated. Refused here,
 * the Pod is not created and its creator reads why; passed on raw, a bad value only failed
 * the init container later, or reached a root, NET_ADMIN container as written.
 * @throws InjectionRefused naming the annotation.
 */
function exclusions(key: string, kind: 'ports' | 'cidrs', raw: string): string | undefined {
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (!entries.length) return undefined;
  const expected = kind === 'ports' ? 'a comma-separated list of ports' : 'a comma-separated list of CIDRs';
  if (entries.length > MAX_CAPTURE_EXCLUSIONS)
    refuse(key, `${expected}, at most ${MAX_CAPTURE_EXCLUSIONS} entries`, raw);
  try {
    if (kind === 'ports') {
      if (!entries.every((e) => /^[0-9]{1,5}$/.test(e))) throw new Error('not a port');
      captureOptions({ proxyUid: PROXY_UID, excludeInboundPorts: entries.map(Number) });
    } else captureOptions({ proxyUid: PROXY_UID, excludeOutboundCidrs: entries });
  } catch {
    refuse(key, kind === 'ports' ? `${expected} (1 to 65535)` : `${expected} (10.0.0.0/8, fd00::/8)`, raw);
  }
  return entries.join(',');
}

/**
 * The capture init container: `hexmesh capture` with the pod's exclusions. Root with
 * NET_ADMIN/NET_RAW only for the moment it runs (iptables in the pod's network namespace);
 * the annotation values reach it checked and rewritten (`exclusions`), as single argv entries.
 */
export function captureContainer(pod: Pod, opts: InjectorOptions): Record<string, unknown> {
  const args = [
    'capture',
    '--proxy-uid',
    String(PROXY_UID),
    '--inbound-port',
    String(INBOUND_PORT),
    '--outbound-port',
    String(OUTBOUND_PORT),
  ];
  const a = pod.metadata?.annotations ?? {};
  const flag = {
    excludeInboundPorts: '--exclude-inbound-ports',
    excludeOutboundPorts: '--exclude-outbound-ports',
    excludeOutboundCidrs: '--exclude-outbound-cidrs',
  } as const;
  for (const k of Object.keys(CAPTURE_EXCLUDE_ANNOTATIONS) as (keyof typeof flag)[]) {
    const key = CAPTURE_EXCLUDE_ANNOTATIONS[k];
    const v =
      a[key] === undefined
        ? undefined
        : exclusions(key, k === 'excludeOutboundCidrs' ? 'cidrs' : 'ports', a[key]);
    if (v) args.push(flag[k], v);
  }
  return {
    name: CAPTURE_CONTAINER,
    image: opts.image,
    args,
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    },
  };
}

/** The JSON Patch that injects `pod`, or [] when it is skipped. */
export function injectionPatch(pod: Pod, opts: InjectorOptions): PatchOp[] {
  if (skipReason(pod)) return [];
  const ops: PatchOp[] = [];
  const container = proxyContainer(pod, opts);
  // First, so they run before the other init containers (they may need the mesh): the proxy,
  // then the capture rules (a native sidecar started first does not need them; the proxy's
  // own connections are never redirected anyway).
  const added = captured(pod) ? [container, captureContainer(pod, opts)] : [container];
  if (pod.spec?.initContainers?.length)
    added.forEach((c, i) => ops.push({ op: 'add', path: `/spec/initContainers/${i}`, value: c }));
  else ops.push({ op: 'add', path: '/spec/initContainers', value: added });
  const volume = {
    name: TOKEN_VOLUME,
    projected: {
      sources: [
        { serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 3600, path: 'token' } },
      ],
    },
  };
  if (pod.spec?.volumes) ops.push({ op: 'add', path: '/spec/volumes/-', value: volume });
  else ops.push({ op: 'add', path: '/spec/volumes', value: [volume] });
  // A projected token names an account: the API server refuses it on a Pod without one. The
  // ServiceAccount admission plugin normally sets `default` before webhooks run; where it has
  // not (disabled), name the same account it would.
  if (!pod.spec?.serviceAccountName)
    ops.push({ op: 'add', path: '/spec/serviceAccountName', value: 'default' });
  if (pod.metadata?.annotations)
    ops.push({ op: 'add', path: `/metadata/annotations/${seg(INJECTED_ANNOTATION)}`, value: opts.version });
  else ops.push({ op: 'add', path: '/metadata/annotations', value: { [INJECTED_ANNOTATION]: opts.version } });
  return ops;
}

const REVIEW_HEAD = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' } as const;

/** An AdmissionReview that refuses, with `message` for whoever sent it. */
export function admissionRefusal(uid: string, code: number, message: string): Record<string, unknown> {
  const reason = code === 413 ? 'RequestEntityTooLarge' : code >= 500 ? 'InternalError' : 'BadRequest';
  return {
    ...REVIEW_HEAD,
    response: { uid, allowed: false, status: { code, reason, message: `hexmesh injector: ${message}` } },
  };
}

/**
 * An AdmissionReview (admission.k8s.io/v1) request → its response. Anything else, or a Pod
 * whose fields are not what Kubernetes sends, is refused with an AdmissionReview naming why;
 * only a CREATE of a Pod is patched (the webhook is registered for nothing else).
 */
export function admissionResponse(review: unknown, opts: InjectorOptions): Record<string, unknown> {
  const r = reviewSchema.safeParse(review);
  if (!r.success) {
    const uid = (review as { request?: { uid?: unknown } } | null)?.request?.uid;
    return admissionRefusal(
      typeof uid === 'string' ? uid : '',
      400,
      `not an AdmissionReview admission.k8s.io/v1: ${issues(r.error)}`,
    );
  }
  const req = r.data.request;
  const uid = req.uid;
  if (req.kind.kind !== 'Pod')
    return {
      ...REVIEW_HEAD,
      response: { uid, allowed: true, warnings: ['hexmesh injector: not a Pod; left as it is'] },
    };
  if ((req.operation ?? 'CREATE') !== 'CREATE') return { ...REVIEW_HEAD, response: { uid, allowed: true } };
  const pod = podSchema.safeParse(req.object);
  if (!pod.success) return admissionRefusal(uid, 400, `not a Pod: ${issues(pod.error)}`);
  let patch: PatchOp[];
  try {
    patch = injectionPatch(pod.data as Pod, opts);
  } catch (err) {
    if (!(err instanceof InjectionRefused)) throw err;
    return admissionRefusal(uid, 400, err.message);
  }
  if (!patch.length) {
    const why = skipReason(pod.data as Pod);
    // Said to whoever created it (kubectl prints warnings): it asked for the mesh and gets none.
    const warnings = why?.startsWith('hostNetwork') ? [`hexmesh injector: not injected (${why})`] : undefined;
    return { ...REVIEW_HEAD, response: { uid, allowed: true, ...(warnings && { warnings }) } };
  }
  return {
    ...REVIEW_HEAD,
    response: {
      uid,
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    },
  };
}

/**
 * The MutatingWebhookConfiguration: two webhooks (namespace opt-in, pod opt-in) as Istio,
 * CREATE of Pods only. failurePolicy `Ignore`: while the webhook is down Pods still start,
 * unmeshed (`hexmesh check --kubernetes` reports them) — a mesh outage must not stop a
 * cluster from scheduling; `Fail` is the choice for a namespace that must never run unmeshed.
 */
export function webhookConfiguration(opts: {
  name?: string;
  /** Absent: left for the control plane to write (webhook-ca.ts), as the install manifests do. */
  caBundlePem?: string;
  url?: string;
  service?: { name: string; namespace: string; port?: number };
  failurePolicy?: 'Ignore' | 'Fail';
}): Record<string, unknown> {
  const clientConfig = {
    ...(opts.url ? { url: opts.url } : {}),
    ...(opts.service
      ? { service: { ...opts.service, path: '/inject', port: opts.service.port ?? 443 } }
      : {}),
    ...(opts.caBundlePem !== undefined ? { caBundle: Buffer.from(opts.caBundlePem).toString('base64') } : {}),
  };
  const common = {
    clientConfig,
    rules: [
      {
        apiGroups: [''],
        apiVersions: ['v1'],
        operations: ['CREATE'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
    ],
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: opts.failurePolicy ?? 'Ignore',
    reinvocationPolicy: 'IfNeeded',
    timeoutSeconds: 10,
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: opts.name ?? 'hexmesh-injector', labels: { 'app.kubernetes.io/part-of': 'hexmesh' } },
    webhooks: [
      {
        name: 'namespace.inject.hexmesh.io',
        ...common,
        namespaceSelector: { matchLabels: { [INJECT_LABEL]: 'enabled' } },
        objectSelector: {
          matchExpressions: [{ key: INJECT_LABEL, operator: 'NotIn', values: ['disabled'] }],
        },
      },
      {
        name: 'pod.inject.hexmesh.io',
        ...common,
        namespaceSelector: { matchExpressions: [{ key: INJECT_LABEL, operator: 'DoesNotExist' }] },
        objectSelector: { matchLabels: { [INJECT_LABEL]: 'enabled' } },
      },
    ],
  };
}

/** The webhook's HTTPS server: `POST /inject`. */
export class InjectionWebhook {
  readonly server: https.Server;
  readonly #opts: InjectorOptions;
  /** Bytes of request bodies held now (MAX_BUFFERED_BYTES). */
  #buffered = 0;

  constructor(tls: { certPem: string; keyPem: string }, opts: InjectorOptions) {
    this.#opts = opts;
    this.server = https.createServer(
      {
        cert: tls.certPem,
        key: tls.keyPem,
        minVersion: 'TLSv1.2',
        // The API server calls with a 10 s timeout (timeoutSeconds); a connection that has not
        // finished its handshake (TLS's default: 120 s) or its request by then is cut, checked
        // every second (Node's default: 30 s), so idle sockets cannot pile up on this port.
        handshakeTimeout: 10_000,
        headersTimeout: 10_000,
        requestTimeout: 10_000,
        connectionsCheckingInterval: 1000,
      },
      (req, res) => this.#handle(req, res),
    );
    // …and one that sends nothing at all after its handshake (no request ever starts, so the
    // request timeouts above never apply) is cut after 10 s idle.
    this.server.timeout = 10_000;
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Replace the serving certificate (renewal). */
  setCertificate(tls: { certPem: string; keyPem: string }): void {
    this.server.setSecureContext({ cert: tls.certPem, key: tls.keyPem });
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/inject')
      return reply(404, { error: 'POST /inject only' });
    const tooLarge = () =>
      admissionRefusal(
        '',
        413,
        `the request is larger than ${MAX_REVIEW_BYTES} bytes; not a Pod this webhook patches`,
      );
    if (Number(req.headers['content-length'] ?? 0) > MAX_REVIEW_BYTES) {
      // Read on and drop the body (nothing is kept; requestTimeout ends an endless one): a
      // closed connection would reset the client before it read the answer.
      req.resume();
      return reply(413, tooLarge());
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const release = () => {
      this.#buffered -= size;
      size = 0;
      chunks.length = 0;
    };
    // However the request ends (answered, aborted), what it held is given back once.
    req.once('close', release);
    const refuse = (status: number, body: Record<string, unknown>) => {
      if (res.headersSent) return;
      reply(status, body);
      release();
    };
    req.on('data', (c: Buffer) => {
      // Answered already: the rest is dropped as it comes.
      if (res.headersSent) return;
      if (size + c.length > MAX_REVIEW_BYTES) return refuse(413, tooLarge());
      if (this.#buffered + c.length > MAX_BUFFERED_BYTES)
        return refuse(
          503,
          admissionRefusal('', 503, `busy: ${MAX_BUFFERED_BYTES} bytes of requests held already; try again`),
        );
      size += c.length;
      this.#buffered += c.length;
      chunks.push(c);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      const body = Buffer.concat(chunks);
      release();
      let review: unknown;
      try {
        review = JSON.parse(body.toString('utf8'));
      } catch (e) {
        return reply(400, admissionRefusal('', 400, `the body is not JSON: ${(e as Error).message}`));
      }
      let answer: Record<string, unknown>;
      try {
        answer = admissionResponse(review, this.#opts);
      } catch (err) {
        // A bug of ours must cost one Pod (allowed: false, or failurePolicy), never the process.
        this.#opts.onError?.(err);
        const uid = (review as { request?: { uid?: unknown } } | null)?.request?.uid;
        answer = admissionRefusal(
          typeof uid === 'string' ? uid : '',
          500,
          `internal error: ${(err as Error)?.message}`,
        );
      }
      reply(200, answer);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
