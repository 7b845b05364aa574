/**
 * What `hexmesh up` starts for a service a rollout already moved on. The mesh file names
 * the service's first version; after a promotion the stable revision is another one, and
 * the route (both Services of the rollout) selects its revision label. Starting the mesh
 * file's instances again would leave the route pointing at no instance and make the
 * controller roll the same template out once more, from the first version. So a service
 * whose persisted rollout status names a stable revision > 0 starts that revision's
 * instances, from the template its history recorded; the controller then resumes with
 * them as the stable set (RolloutController#resume) and does not rerun the template.
 */
import type { ControlClient, StoredResource } from '../cli/client/control-client.ts';
import { rolloutSchema } from '../config/resources.ts';
import type { InstanceSpec } from '../runtime/runtime.ts';
import { instanceSpec } from './rollout-run.ts';
import { rolloutKeys, type HistoryEntry, type RolloutStatus } from './rollout-status.ts';

/** `specs` with the instances of every rolled-out service replaced by its stable revision's. */
export async function withStableRevisions(
  client: ControlClient,
  specs: readonly InstanceSpec[],
  log: (line: string) => void = () => {},
): Promise<InstanceSpec[]> {
  let out = [...specs];
  let rollouts: StoredResource[];
  try {
    rollouts = (await client.listResources('Rollout')).body;
  } catch {
    return out;
  }
  for (const doc of rollouts) {
    const { resourceVersion: _rv, creationTimestamp: _ct, ...metadata } = doc.metadata;
    const parsed = rolloutSchema.safeParse({ ...doc, metadata });
    if (!parsed.success) continue;
    const r = parsed.data;
    const ns = r.metadata.namespace;
    const status = await readJson<RolloutStatus>(client, rolloutKeys.status(ns, r.metadata.name));
    const history = await readJson<HistoryEntry[]>(client, rolloutKeys.history(ns, r.metadata.name));
    const revision = status?.stableRevision ?? 0;
    if (revision === 0) continue;
    const template = [...(history ?? [])].reverse().find((h) => h.revision === revision)?.template;
    if (!template) {
      log(
        `[rollout] ${ns}/${r.metadata.name}: stable revision ${revision} has no recorded template; starting the mesh file's instances`,
      );
      continue;
    }
    const rr = { ...r, spec: { ...r.spec, template } };
    out = out.filter((s) => !(s.service === r.spec.service && s.namespace === ns));
    for (let i = 1; i <= template.replicas; i++)
      out.push(instanceSpec(rr, `${r.spec.service}-r${revision}-${i}`, revision));
    log(`[rollout] ${ns}/${r.metadata.name}: starting stable revision ${revision} of ${r.spec.service}`);
  }
  return out;
}

async function readJson<T>(client: ControlClient, key: string): Promise<T | undefined> {
  try {
    const e = (await client.kvGet(key)).body;
    return e ? (JSON.parse(e.value) as T) : undefined;
  } catch {
    return undefined;
  }
}
