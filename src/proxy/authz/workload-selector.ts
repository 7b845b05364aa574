/**
 * Which workloads a security policy applies to (Istio's attachment rules): a policy
 * with a `targetRef` applies to that Service's workloads in the policy's namespace;
 * without one, to every workload of its namespace; in the root namespace
 * `hexmesh-system` without one, to every workload of the mesh.
 */

/** The mesh-wide namespace (Istio's root namespace). */
export const ROOT_NAMESPACE = 'hexmesh-system';

interface Attached {
  metadata: { namespace: string };
  spec: { targetRef?: { name: string } };
}

/** True if `p` applies to the workload of `service` in `namespace`. */
export function appliesTo(p: Attached, service: string, namespace: string): boolean {
  const t = p.spec.targetRef;
  if (p.metadata.namespace === ROOT_NAMESPACE && t === undefined) return true;
  return p.metadata.namespace === namespace && (t === undefined || t.name === service);
}
