/**
 * `hexmesh install --kubernetes`: every object the mesh needs in a cluster, for
 * `kubectl apply -f -` (as `linkerd install`): the namespace, the CRDs (hexmesh's, generated
 * from the zod schemas, and the upstream Gateway API route CRDs when shipped beside the
 * package), the control plane's ServiceAccount with exactly the permissions its code uses
 * (src/control/kubernetes/rbac.ts), its Deployment and Services, and the injection webhook.
 * The Helm chart in deploy/helm/hexmesh renders the same objects (a test keeps them equal).
 *
 * The webhook's `caBundle` is not here: the mesh CA is made (or imported) when the control
 * plane starts, and the control plane writes it into the configuration itself
 * (src/control/kubernetes/webhook-ca.ts). The manifests are therefore the same on every run
 * and re-applying them changes nothing.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { hexmeshCrds } from '../control/kubernetes/crds.ts';
import { webhookConfiguration } from '../control/kubernetes/injector.ts';
import { CLUSTER_RULES, NAMESPACE_RULES, WEBHOOK_CONFIGURATION } from '../control/kubernetes/rbac.ts';
import { ROOT } from '../runtime/paths.ts';

export interface KubernetesInstallOptions {
  namespace: string;
  /** The image with the hexmesh package (`hexmesh` on PATH): control plane and injected proxies. */
  image: string;
  trustDomain: string;
  replicas: number;
}

export type KubeManifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
};

export const CONTROL_NAME = 'hexmesh-control';
export const INJECTOR_SERVICE = 'hexmesh-injector';
export const API_PORT = 7070;
export const WEBHOOK_PORT = 8443;
const PART_OF = { 'app.kubernetes.io/part-of': 'hexmesh' };
const CONTROL_LABELS = { 'app.kubernetes.io/name': CONTROL_NAME, ...PART_OF };
/** Where the upstream Gateway API CRDs live in the checkout and in the package. */
export const GATEWAY_API_DIR = join(ROOT, 'deploy/kubernetes/gateway-api');

/** The upstream Gateway API route CRDs, as published (absent: an empty list). */
export function gatewayApiCrds(dir = GATEWAY_API_DIR): KubeManifest[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as KubeManifest),
    )
    .filter((d) => d?.kind === 'CustomResourceDefinition');
}

/** The control plane's objects, in the order `kubectl apply` should create them. */
export function kubernetesManifests(o: KubernetesInstallOptions): KubeManifest[] {
  const ns = o.namespace;
  const meta = (name: string, labels: Record<string, string> = CONTROL_LABELS) => ({
    name,
    namespace: ns,
    labels: { ...labels },
  });
  const serviceAccount = { kind: 'ServiceAccount', name: CONTROL_NAME, namespace: ns };
  const control = `http://${CONTROL_NAME}.${ns}.svc:${API_PORT}`;
  const webhook = webhookConfiguration({
    name: WEBHOOK_CONFIGURATION,
    service: { name: INJECTOR_SERVICE, namespace: ns, port: 443 },
  }) as KubeManifest;
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      // The control plane itself is never injected.
      metadata: { name: ns, labels: { ...PART_OF, 'hexmesh.io/inject': 'disabled' } },
    },
    ...(hexmeshCrds() as KubeManifest[]),
    ...gatewayApiCrds(),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(CONTROL_NAME) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: CONTROL_NAME, labels: { ...CONTROL_LABELS } },
      rules: CLUSTER_RULES.map((r) => ({ ...r })),
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: CONTROL_NAME, labels: { ...CONTROL_LABELS } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROL_NAME },
      subjects: [serviceAccount],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: meta(CONTROL_NAME),
      rules: NAMESPACE_RULES.map((r) => ({ ...r })),
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta(CONTROL_NAME),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROL_NAME },
      subjects: [serviceAccount],
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(CONTROL_NAME),
      spec: {
        selector: { 'app.kubernetes.io/name': CONTROL_NAME },
        ports: [{ name: 'http-api', port: API_PORT, targetPort: API_PORT, protocol: 'TCP' }],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(INJECTOR_SERVICE),
      spec: {
        selector: { 'app.kubernetes.io/name': CONTROL_NAME },
        ports: [{ name: 'https-webhook', port: 443, targetPort: WEBHOOK_PORT, protocol: 'TCP' }],
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(CONTROL_NAME),
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: { 'app.kubernetes.io/name': CONTROL_NAME } },
        template: {
          metadata: { labels: { ...CONTROL_LABELS } },
          spec: {
            serviceAccountName: CONTROL_NAME,
            containers: [
              {
                name: 'control',
                image: o.image,
                command: ['hexmesh'],
                args: [
                  'control',
                  '--kubernetes',
                  '--listen',
                  `0.0.0.0:${API_PORT}`,
                  '--inject-listen',
                  `0.0.0.0:${WEBHOOK_PORT}`,
                  '--trust-domain',
                  o.trustDomain,
                  '--data-dir',
                  '/var/lib/hexmesh',
                  '--proxy-image',
                  o.image,
                  '--inject-control',
                  control,
                ],
                env: [
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                ],
                ports: [
                  { name: 'http-api', containerPort: API_PORT, protocol: 'TCP' },
                  { name: 'https-webhook', containerPort: WEBHOOK_PORT, protocol: 'TCP' },
                ],
                readinessProbe: { tcpSocket: { port: API_PORT }, periodSeconds: 5 },
                resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
                securityContext: {
                  runAsNonRoot: true,
                  runAsUser: 2103,
                  runAsGroup: 2103,
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [{ name: 'data', mountPath: '/var/lib/hexmesh' }],
              },
            ],
            volumes: [{ name: 'data', emptyDir: {} }],
          },
        },
      },
    },
    webhook,
  ];
}

/** As `kubectl apply -f -` reads them: YAML documents, or one JSON `List`. */
export function formatManifests(objects: readonly KubeManifest[], output: 'yaml' | 'json'): string {
  if (output === 'json')
    return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2)}\n`;
  return objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join('');
}
