/**
 * `hexmesh check --kubernetes`: what the cluster side of the mesh needs — the CRDs served,
 * the injection webhook registered with a CA bundle that trusts the mesh CA, and which proxy
 * images injected Pods run.
 */
import type { CheckResult } from '../../identity/expiry-checks.ts';
import type { KubeApi } from './kube-api.ts';
import { HEXMESH_GROUP, HEXMESH_KINDS } from './crds.ts';
import { INJECTED_ANNOTATION, PROXY_CONTAINER } from './injector.ts';

/** Every CRD the mesh reads. */
export const MESH_CRDS = [
  'httproutes.gateway.networking.k8s.io',
  'grpcroutes.gateway.networking.k8s.io',
  ...HEXMESH_KINDS.map((k) => `${k.plural}.${HEXMESH_GROUP}`),
];

interface Named {
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
}

async function getJson<T>(api: KubeApi, path: string): Promise<{ status: number; body?: T }> {
  const r = await api.request('GET', path);
  return r.status === 200 ? { status: 200, body: JSON.parse(r.body) as T } : { status: r.status };
}

/** Each CRD exists and is Established. */
export async function checkCrds(api: KubeApi): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const name of MESH_CRDS) {
    const r = await getJson<{ status?: { conditions?: { type: string; status: string }[] } }>(
      api,
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
    );
    if (r.status === 404)
      out.push({
        name: 'kubernetes-crds',
        status: 'fail',
        message: `CRD ${name} is not installed (deploy/kubernetes/)`,
      });
    else if (!r.body)
      out.push({ name: 'kubernetes-crds', status: 'fail', message: `CRD ${name}: HTTP ${r.status}` });
    else if (!r.body.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'))
      out.push({ name: 'kubernetes-crds', status: 'warn', message: `CRD ${name} is not Established yet` });
  }
  if (!out.length)
    out.push({ name: 'kubernetes-crds', status: 'ok', message: `${MESH_CRDS.length} CRDs established` });
  return out;
}

/** The webhook configuration exists, and each webhook's caBundle holds one of the mesh CA's roots. */
export async function checkWebhook(
  api: KubeApi,
  meshBundlePem: string,
  name = 'hexmesh-injector',
): Promise<CheckResult[]> {
  const r = await getJson<
    Named & { webhooks?: { name: string; failurePolicy?: string; clientConfig?: { caBundle?: string } }[] }
  >(api, `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${name}`);
  if (r.status === 404)
    return [
      {
        name: 'kubernetes-webhook',
        status: 'warn',
        message: `no MutatingWebhookConfiguration ${name}: Pods are not injected`,
      },
    ];
  if (!r.body) return [{ name: 'kubernetes-webhook', status: 'fail', message: `${name}: HTTP ${r.status}` }];
  const roots = pemBlocks(meshBundlePem);
  const out: CheckResult[] = [];
  for (const w of r.body.webhooks ?? []) {
    const bundle = Buffer.from(w.clientConfig?.caBundle ?? '', 'base64').toString('utf8');
    if (!pemBlocks(bundle).some((b) => roots.includes(b)))
      out.push({
        name: 'kubernetes-webhook',
        status: 'fail',
        message: `${name}/${w.name}: its caBundle does not hold the mesh CA's root: the API server cannot call it`,
      });
  }
  if (!out.length)
    out.push({
      name: 'kubernetes-webhook',
      status: 'ok',
      message: `${name}: ${r.body.webhooks?.length ?? 0} webhooks trust the mesh CA (failurePolicy ${[...new Set(r.body.webhooks?.map((w) => w.failurePolicy ?? 'Fail'))].join(', ')})`,
    });
  return out;
}

/**
 * The control plane's ServiceAccount holds every permission its code uses (rbac.ts), asked
 * of the API server one by one (SubjectAccessReview: whatever grants it, not only our roles).
 */
export async function checkRbac(
  api: KubeApi,
  namespace: string,
  serviceAccount = 'hexmesh-control',
): Promise<CheckResult[]> {
  const sa = await api.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}`);
  if (sa.status === 404)
    return [
      {
        name: 'kubernetes-rbac',
        status: 'warn',
        message: `no ServiceAccount ${namespace}/${serviceAccount}: the control plane is not installed there (hexmesh install --kubernetes; --control-namespace names another)`,
      },
    ];
  const { CLUSTER_RULES, NAMESPACE_RULES, grants } = await import('./rbac.ts');
  const asks = [
    ...grants(CLUSTER_RULES).map((g) => ({ ...g, namespace: undefined as string | undefined })),
    ...grants(NAMESPACE_RULES).map((g) => ({ ...g, namespace })),
  ];
  const missing: string[] = [];
  for (const a of asks) {
    const r = await api.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${namespace}:${serviceAccount}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
        resourceAttributes: {
          group: a.group,
          resource: a.resource,
          verb: a.verb,
          ...(a.subresource ? { subresource: a.subresource } : {}),
          ...(a.name ? { name: a.name } : {}),
          ...(a.namespace ? { namespace: a.namespace } : {}),
        },
      },
    });
    if (r.status !== 201 && r.status !== 200)
      return [
        {
          name: 'kubernetes-rbac',
          status: 'fail',
          message: `cannot ask the API server (SubjectAccessReview): HTTP ${r.status}`,
        },
      ];
    if (!(JSON.parse(r.body) as { status?: { allowed?: boolean } }).status?.allowed)
      missing.push(
        `${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ''}${a.group ? `.${a.group}` : ''}${a.name ? ` ${a.name}` : ''}${a.namespace ? ` in ${a.namespace}` : ''}`,
      );
  }
  const who = `ServiceAccount ${namespace}/${serviceAccount}`;
  return missing.length
    ? [{ name: 'kubernetes-rbac', status: 'fail', message: `${who} may not: ${missing.join(', ')}` }]
    : [
        {
          name: 'kubernetes-rbac',
          status: 'ok',
          message: `${who} holds all ${asks.length} permissions the control plane uses`,
        },
      ];
}

/** Injected Pods by proxy image: more than one image is a rollout of the mesh in progress (or stuck). */
export async function checkSidecars(api: KubeApi): Promise<CheckResult[]> {
  const r = await getJson<{
    items: (Named & {
      spec?: {
        initContainers?: { name: string; image?: string }[];
        containers?: { name: string; image?: string }[];
      };
    })[];
  }>(api, '/api/v1/pods');
  if (!r.body)
    return [{ name: 'kubernetes-sidecars', status: 'fail', message: `listing Pods: HTTP ${r.status}` }];
  const images = new Map<string, number>();
  for (const p of r.body.items) {
    const c = [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].find(
      (x) => x.name === PROXY_CONTAINER,
    );
    if (!c) continue;
    const image = c.image ?? p.metadata.annotations?.[INJECTED_ANNOTATION] ?? '?';
    images.set(image, (images.get(image) ?? 0) + 1);
  }
  const list = [...images].map(([i, n]) => `${i} (${n})`).join(', ');
  if (images.size === 0) return [{ name: 'kubernetes-sidecars', status: 'ok', message: 'no injected Pods' }];
  return [
    {
      name: 'kubernetes-sidecars',
      status: images.size > 1 ? 'warn' : 'ok',
      message:
        images.size > 1 ? `injected Pods run several proxy images: ${list}` : `injected Pods run ${list}`,
    },
  ];
}

function pemBlocks(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) =>
    m[0].replace(/\s+/g, ''),
  );
}
