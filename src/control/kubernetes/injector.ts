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

export interface InjectorOptions {
  /** The proxy image (`hexmesh` package installed, `hexmesh` on PATH). */
  image: string;
  /** Control plane URL(s) the proxy connects to. */
  control: readonly string[];
  /** The value of INJECTED_ANNOTATION (the mesh version). */
  version: string;
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
    volumes?: { name: string; [k: string]: unknown }[];
  };
}

type PatchOp = { op: 'add' | 'replace'; path: string; value: unknown };

/** JSON Patch escaping of one path segment (RFC 6901). */
const seg = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** The service a Pod belongs to: annotation, then the usual app labels, then its name's stem. */
export function podService(pod: Pod): string {
  const m = pod.metadata ?? {};
  const name =
    m.annotations?.[SERVICE_ANNOTATION] ??
    m.labels?.['app.kubernetes.io/name'] ??
    m.labels?.app ??
    (m.generateName ?? m.name ?? 'app').replace(/-[a-z0-9]{5,10}(-[a-z0-9]{5})?-?$/, '').replace(/-$/, '');
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .replace(/^-+|-+$/g, '') || 'app'
  );
}

/** The app's port: the annotation, else the first TCP containerPort of the first container. */
export function podAppPort(pod: Pod): number | undefined {
  const a = Number(pod.metadata?.annotations?.[APP_PORT_ANNOTATION]);
  if (Number.isInteger(a) && a > 0 && a < 65536) return a;
  for (const c of pod.spec?.containers ?? [])
    for (const p of c.ports ?? [])
      if ((p.protocol ?? 'TCP') === 'TCP' && p.containerPort) return p.containerPort;
  return undefined;
}

/** Why a Pod is not injected, or undefined when it is. */
export function skipReason(pod: Pod): string | undefined {
  if (pod.metadata?.annotations?.[INJECT_LABEL] === 'false') return `annotation ${INJECT_LABEL}: "false"`;
  if (pod.metadata?.labels?.[INJECT_LABEL] === 'disabled') return `label ${INJECT_LABEL}=disabled`;
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  if (all.some((c) => c.name === PROXY_CONTAINER || c.name === CAPTURE_CONTAINER)) return 'already injected';
  return undefined;
}

/** A Pod the injector refuses to admit, and why (the API server shows the message to its creator). */
export class InjectionRefused extends Error {}

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
    throw new InjectionRefused(
      `annotation ${PROXY_SEMI_SPACE_ANNOTATION}: expected a whole number of MiB from 1 to ` +
        `${MAX_SEMI_SPACE_MIB}, got ${JSON.stringify(raw.slice(0, 64))}`,
    );
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

function captured(pod: Pod): boolean {
  return pod.metadata?.annotations?.[CAPTURE_ANNOTATION] !== 'false';
}

function outboundPolicy(pod: Pod): string {
  const v = pod.metadata?.annotations?.[OUTBOUND_POLICY_ANNOTATION];
  return v === 'REGISTRY_ONLY' ? v : 'ALLOW_ANY';
}

/**
 * The capture init container: `hexmesh capture` with the pod's exclusions. Root with
 * NET_ADMIN/NET_RAW only for the moment it runs (iptables in the pod's network namespace);
 * the annotation values reach it as single argv entries and are validated by the command.
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
    const v = a[CAPTURE_EXCLUDE_ANNOTATIONS[k]]?.trim();
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

/** An AdmissionReview (admission.k8s.io/v1) request → its response. */
export function admissionResponse(review: unknown, opts: InjectorOptions): Record<string, unknown> {
  const req = (review as { request?: { uid?: string; object?: Pod; kind?: { kind?: string } } })?.request;
  const uid = req?.uid ?? '';
  const base = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' };
  if (!req || req.kind?.kind !== 'Pod' || !req.object)
    return {
      ...base,
      response: { uid, allowed: true, warnings: ['hexmesh injector: not a Pod; left as it is'] },
    };
  let patch: PatchOp[];
  try {
    patch = injectionPatch(req.object, opts);
  } catch (err) {
    if (!(err instanceof InjectionRefused)) throw err;
    const message = `hexmesh injector: ${err.message}`;
    return {
      ...base,
      response: { uid, allowed: false, status: { code: 400, reason: 'BadRequest', message } },
    };
  }
  if (!patch.length) return { ...base, response: { uid, allowed: true } };
  return {
    ...base,
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

  constructor(tls: { certPem: string; keyPem: string }, opts: InjectorOptions) {
    this.#opts = opts;
    this.server = https.createServer(
      { cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.2', requestTimeout: 10_000 },
      (req, res) => this.#handle(req, res),
    );
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
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // An AdmissionReview of a Pod is well under this; more is not a Pod we will patch.
      if (size > 4 * 1024 * 1024) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let review: unknown;
      try {
        review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return reply(400, { error: `invalid JSON: ${(e as Error).message}` });
      }
      reply(200, admissionResponse(review, this.#opts));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
