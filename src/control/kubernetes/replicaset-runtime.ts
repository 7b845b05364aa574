/**
 * The rollout runtime interface (src/runtime/runtime.ts) over Kubernetes workloads: an
 * "instance" of a revision is one replica of that revision's ReplicaSet, so starting and
 * stopping instances scales the ReplicaSet (created, from the object the controller gives,
 * when the first instance starts). Revision 0 — the pods the referenced Deployment ran
 * before the first rollout — is scaled through the Deployment's `spec.replicas`, since its
 * ReplicaSet belongs to the Deployment controller; neither pod template is ever changed.
 *
 * Health is what the ReplicaSet (Deployment) controller reports: `status.readyReplicas`
 * covering the instances started, for the current generation.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { REVISION_LABEL } from '../../rollout/rollout-status.ts';
import type {
  InstanceHandle,
  InstanceInfo,
  InstanceSpec,
  Runtime,
  StopOptions,
} from '../../runtime/runtime.ts';
import { KubeApiError, type KubeApi } from './kube-api.ts';

/** Where one revision's replicas run. */
export interface RevisionWorkload {
  kind: 'ReplicaSet' | 'Deployment';
  name: string;
  /** ReplicaSet: the object to create when it does not exist yet (`spec.replicas` set here). */
  create?: Record<string, unknown>;
}

interface Entry {
  workload: RevisionWorkload;
  live: Set<string>;
  /** Serialises the scale writes of one workload. */
  queue: Promise<void>;
}

interface Scalable {
  metadata?: { generation?: number };
  spec?: { replicas?: number };
  status?: { readyReplicas?: number; observedGeneration?: number };
}

export class ReplicaSetRuntime implements Runtime {
  readonly #api: KubeApi;
  readonly #namespace: string;
  readonly #revisions = new Map<string, Entry>();
  #closed = false;

  constructor(api: KubeApi, namespace: string) {
    this.#api = api;
    this.#namespace = namespace;
  }

  /** Make a revision's workload known, with the instance ids already running in it. */
  register(revision: number, workload: RevisionWorkload, running: readonly string[] = []): void {
    this.#revisions.set(String(revision), { workload, live: new Set(running), queue: Promise.resolve() });
  }

  #path(w: RevisionWorkload): string {
    const plural = w.kind === 'ReplicaSet' ? 'replicasets' : 'deployments';
    return `/apis/apps/v1/namespaces/${this.#namespace}/${plural}/${w.name}`;
  }

  async startInstance(spec: InstanceSpec): Promise<InstanceHandle> {
    const e = this.#revisions.get(spec.labels[REVISION_LABEL] ?? '');
    if (!e)
      throw new HexmeshError(
        'HEXMESH_ERR_NOT_FOUND',
        `kubernetes rollout: no workload registered for revision ${spec.labels[REVISION_LABEL]}`,
      );
    e.live.add(spec.id);
    await this.#scale(e);
    return { id: spec.id, info: () => this.#info(spec.id, spec.labels[REVISION_LABEL]!) };
  }

  async stopInstance(id: string, _opts: StopOptions): Promise<void> {
    for (const e of this.#revisions.values())
      if (e.live.delete(id)) {
        await this.#scale(e);
        return;
      }
  }

  /** Set the workload's replicas to the instances started in it (the last writer wins the count). */
  #scale(e: Entry): Promise<void> {
    const run = e.queue.then(async () => {
      const want = e.live.size;
      const path = this.#path(e.workload);
      const cur = await this.#api.request('GET', path);
      if (cur.status === 404 && e.workload.create) {
        const obj = structuredClone(e.workload.create) as { spec: { replicas?: number } };
        obj.spec.replicas = want;
        const r = await this.#api.request('POST', path.slice(0, path.lastIndexOf('/')), obj);
        if (r.status !== 201 && r.status !== 409) throw new KubeApiError('POST', path, r);
        if (r.status === 201) return;
      } else if (cur.status !== 200) throw new KubeApiError('GET', path, cur);
      else if ((JSON.parse(cur.body) as Scalable).spec?.replicas === want) return;
      const r = await this.#api.request(
        'PATCH',
        path,
        { spec: { replicas: want } },
        'application/merge-patch+json',
      );
      if (r.status !== 200) throw new KubeApiError('PATCH', path, r);
    });
    e.queue = run.catch(() => {});
    return run;
  }

  /**
   * Kubernetes instances are not local processes: there is no admin port on this host to
   * read, so the list is empty (metric analysis has nothing to measure; webhooks still run).
   */
  list(): InstanceInfo[] {
    return [];
  }

  #info(id: string, revision: string): InstanceInfo {
    return {
      id,
      service: '',
      namespace: this.#namespace,
      version: undefined,
      labels: { [REVISION_LABEL]: revision },
      state: 'running',
      health: 'unknown',
      appPort: 0,
      inboundPort: 0,
      outboundPort: 0,
      adminPort: 0,
      appPid: undefined,
      sidecarPid: undefined,
      restarts: 0,
      startedAt: undefined,
      logFile: '',
    };
  }

  /** Every workload holding one of `ids` reports at least its started replicas ready. */
  async waitHealthy(ids: readonly string[], timeoutMs: number): Promise<void> {
    const entries = [...this.#revisions.values()].filter((e) => ids.some((id) => e.live.has(id)));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#closed) throw new HexmeshError('HEXMESH_ERR_DRAINING', 'kubernetes rollout: closing');
      const waiting: string[] = [];
      for (const e of entries) {
        await e.queue;
        const r = await this.#api.request('GET', this.#path(e.workload));
        const o = r.status === 200 ? (JSON.parse(r.body) as Scalable) : undefined;
        const ready = o?.status?.readyReplicas ?? 0;
        const current = (o?.status?.observedGeneration ?? 0) >= (o?.metadata?.generation ?? 0);
        if (!current || ready < e.live.size)
          waiting.push(`${e.workload.kind} ${e.workload.name}: ${ready}/${e.live.size} ready`);
      }
      if (!waiting.length) return;
      if (Date.now() >= deadline)
        throw new HexmeshError(
          'HEXMESH_ERR_TIMEOUT',
          `kubernetes rollout: not healthy in time: ${waiting.join('; ')}`,
        );
      await sleep(Math.min(500, Math.max(1, deadline - Date.now())));
    }
  }

  on(): () => void {
    return () => {};
  }

  /** Stop waiting; the workloads stay as they are (a successor resumes from them). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#revisions.values()].map((e) => e.queue));
  }
}
