/**
 * Stand-ins for the kube-controller-manager parts a rollout leans on, for tests against an API
 * server without one: the ReplicaSet controller (each ReplicaSet reports its replicas ready)
 * and the Deployment controller (the Deployment's own ReplicaSets follow its replicas, as for
 * a paused Deployment). No Pods are created.
 */
import type { KubeApiServer } from './kube-apiserver.ts';

interface Scalable {
  metadata: { name: string; generation: number; ownerReferences?: { uid: string }[] };
  spec: { replicas: number };
  status?: { readyReplicas?: number; observedGeneration?: number };
}

/**
 * Stand-ins for kube-controller-manager: every ReplicaSet reports its replicas ready; the
 * Deployment's own ReplicaSet follows the Deployment's replicas. Returns the stop function.
 */
export function playControllers(
  kube: KubeApiServer,
  ns: string,
  deployment: string,
  deploymentUid: string,
): () => Promise<void> {
  const APPS = `/apis/apps/v1/namespaces/${ns}`;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const d = await kube.must<Scalable>('GET', `${APPS}/deployments/${deployment}`);
        const list = await kube.must<{ items: Scalable[] }>('GET', `${APPS}/replicasets`);
        for (const rs of list.items) {
          const own = rs.metadata.ownerReferences?.some((o) => o.uid === deploymentUid);
          if (own && rs.spec.replicas !== d.spec.replicas) {
            await kube.request(
              'PATCH',
              `${APPS}/replicasets/${rs.metadata.name}`,
              JSON.stringify({ spec: { replicas: d.spec.replicas } }),
              { 'content-type': 'application/merge-patch+json' },
            );
            continue;
          }
          if (
            (rs.status?.readyReplicas ?? 0) !== rs.spec.replicas ||
            rs.status?.observedGeneration !== rs.metadata.generation
          )
            await kube.request(
              'PATCH',
              `${APPS}/replicasets/${rs.metadata.name}/status`,
              JSON.stringify({
                status: {
                  replicas: rs.spec.replicas,
                  readyReplicas: rs.spec.replicas,
                  availableReplicas: rs.spec.replicas,
                  observedGeneration: rs.metadata.generation,
                },
              }),
              { 'content-type': 'application/merge-patch+json' },
            );
        }
        if (
          d.status?.observedGeneration !== d.metadata.generation ||
          (d.status?.readyReplicas ?? 0) !== d.spec.replicas
        )
          await kube.request(
            'PATCH',
            `${APPS}/deployments/${deployment}/status`,
            JSON.stringify({
              status: {
                replicas: d.spec.replicas,
                readyReplicas: d.spec.replicas,
                observedGeneration: d.metadata.generation,
              },
            }),
            { 'content-type': 'application/merge-patch+json' },
          );
      } catch {
        // The server is going away at the end of the test.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}
