/**
 * What the control plane's ServiceAccount may do: exactly the requests `hexmesh control
 * --kubernetes` makes, each rule naming the code that needs it. `hexmesh install
 * --kubernetes` and the Helm chart grant these; `hexmesh check --kubernetes` asks the API
 * server (SubjectAccessReview) whether the ServiceAccount holds each of them; the install
 * test runs the control plane with nothing more.
 */
import { HEXMESH_GROUP, HEXMESH_KINDS } from './crds.ts';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** Informers list and watch; they never get one object. */
const WATCH = ['list', 'watch'];
const HEXMESH_PLURALS = HEXMESH_KINDS.map((k) => k.plural);

/** The MutatingWebhookConfiguration whose caBundle the control plane keeps (webhook-ca.ts). */
export const WEBHOOK_CONFIGURATION = 'hexmesh-injector';

/** Cluster-wide rules (the mirror and the rollouts see every namespace). */
export const CLUSTER_RULES: readonly PolicyRule[] = [
  // kubernetes-source.ts mirrors Services; kube-traffic.ts reads a rollout's Service and
  // server-side applies <svc>-stable / <svc>-canary (create when missing, else patch).
  { apiGroups: [''], resources: ['services'], verbs: ['get', ...WATCH, 'create', 'patch'] },
  // kubernetes-source.ts: EndpointSlices → catalog instances.
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: WATCH },
  // kubernetes-source.ts mirrors routes; kube-traffic.ts reads <svc>-rollout (it applies only
  // a route of its own, never one someone else made under that name) and applies it.
  {
    apiGroups: ['gateway.networking.k8s.io'],
    resources: ['httproutes'],
    verbs: ['get', ...WATCH, 'create', 'patch'],
  },
  { apiGroups: ['gateway.networking.k8s.io'], resources: ['grpcroutes'], verbs: WATCH },
  // kubernetes-source.ts writes route status (Accepted, ResolvedRefs).
  {
    apiGroups: ['gateway.networking.k8s.io'],
    resources: ['httproutes/status', 'grpcroutes/status'],
    verbs: ['patch'],
  },
  // kubernetes-source.ts mirrors the hexmesh kinds; deployment-rollouts.ts reads Rollouts.
  { apiGroups: [HEXMESH_GROUP], resources: HEXMESH_PLURALS, verbs: WATCH },
  // deployment-rollouts.ts removes a consumed hexmesh.io/command annotation.
  { apiGroups: [HEXMESH_GROUP], resources: ['rollouts'], verbs: ['patch'] },
  // kubernetes-source.ts writes Accepted; deployment-rollouts.ts a Rollout's progress.
  { apiGroups: [HEXMESH_GROUP], resources: HEXMESH_PLURALS.map((p) => `${p}/status`), verbs: ['patch'] },
  // deployment-rollouts.ts: watches Deployments, pauses the referenced one; replicaset-runtime.ts
  // scales it (revision 0) and reads its status.
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', ...WATCH, 'patch'] },
  // deployment-rollouts.ts lists the Deployment's ReplicaSets (adoption); replicaset-runtime.ts
  // creates a revision's ReplicaSet, scales it and reads its status.
  { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['get', 'list', 'create', 'patch'] },
  // token-review.ts: a sidecar's projected ServiceAccount token buys its certificate.
  { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  // webhook-ca.ts keeps the injection webhook's caBundle equal to the mesh CA's roots.
  {
    apiGroups: ['admissionregistration.k8s.io'],
    resources: ['mutatingwebhookconfigurations'],
    resourceNames: [WEBHOOK_CONFIGURATION],
    verbs: ['get', 'patch'],
  },
];

/** Rules in the control plane's own namespace: the Leases its replicas elect on (lease-election.ts). */
export const NAMESPACE_RULES: readonly PolicyRule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

/** Every (group, resource, verb, name?) the rules grant, one by one (for access reviews). */
export function grants(
  rules: readonly PolicyRule[],
): { group: string; resource: string; subresource?: string; verb: string; name?: string }[] {
  return rules.flatMap((r) =>
    r.apiGroups.flatMap((group) =>
      r.resources.flatMap((res) => {
        const [resource, subresource] = res.split('/');
        return r.verbs.flatMap((verb) =>
          (r.resourceNames ?? [undefined]).map((name) => ({
            group,
            resource,
            ...(subresource ? { subresource } : {}),
            verb,
            ...(name ? { name } : {}),
          })),
        );
      }),
    ),
  );
}
