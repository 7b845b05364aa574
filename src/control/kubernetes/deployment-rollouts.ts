/**
 * Rollouts on Kubernetes (`hexmesh control --kubernetes`): a Rollout with
 * `spec.workloadRef: {kind: Deployment, name}` takes that Deployment's pod template as the
 * revision to run, as Argo Rollouts' workloadRef does. The walk itself — canary steps,
 * pauses, analysis, webhooks, promotion and rollback — is the same code as for local
 * processes (src/rollout/rollout-run.ts); here it runs on ReplicaSetRuntime and writes its
 * routing as Kubernetes objects (kube-traffic.ts).
 *
 * - **Adoption.** On first sight the Deployment is paused (`spec.paused: true`, so its own
 *   controller never rolls a changed template) and its pods are revision 0, selected by
 *   their `pod-template-hash`.
 * - **A revision** is a change of the Deployment's pod template (`kubectl set image deploy/…`).
 *   It gets its own ReplicaSet `<deployment>-<template hash>` beside the old one, owned by
 *   the Rollout, scaled with the canary weight (`ceil(weight% × replicas)`); the old
 *   ReplicaSet's pod template is never touched. Promotion scales the old revision to zero
 *   (revision 0 through the Deployment's replicas); rollback scales the new one to zero and
 *   puts all traffic back on stable. A template that failed is not run again until it changes.
 * - **Status** goes to the Rollout's status subresource: phase, step, canaryWeight, revision,
 *   the stable and canary workloads, a short history and a `Progressing` condition.
 * - **Commands**: the annotation `hexmesh.io/command: promote|pause|resume|abort`, consumed
 *   (removed) by the controller.
 * - **Crash safety.** The status is the controller's intent. A controller that starts (or
 *   becomes leader) with a revision in progress resumes it at its recorded step: the new
 *   ReplicaSet is still there, traffic goes to stable until it is healthy again, then back to
 *   the step's weight. Closing leaves runs as they are, for the successor.
 */
import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { rolloutSchema, type Rollout } from '../../config/resources.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { canarySteps } from '../../rollout/canary-steps.ts';
import { Inbox, runRevision, type RevisionSet, type TemplateRollout } from '../../rollout/rollout-run.ts';
import {
  REVISION_LABEL,
  TERMINAL_PHASES,
  type RolloutAction,
  type RolloutPhase,
  type RolloutStatus,
} from '../../rollout/rollout-status.ts';
import { KubeApi, KubeApiError, type KubeInformer } from './kube-api.ts';
import { KubeRolloutTraffic } from './kube-traffic.ts';
import { LeaseElection } from './lease-election.ts';
import { ReplicaSetRuntime } from './replicaset-runtime.ts';

export const COMMAND_ANNOTATION = 'hexmesh.io/command';
const ROLLOUT_LABEL = 'hexmesh.io/rollout';
const HASH_LABEL = 'pod-template-hash';
const ROLLOUTS = '/apis/hexmesh.io/v1alpha1';
const ACTIONS: ReadonlySet<string> = new Set(['promote', 'pause', 'resume', 'abort']);

export interface DeploymentRolloutsOptions {
  /** A kubeconfig file; absent: the pod's in-cluster service account. */
  kubeconfig?: string;
  /** This replica's id (Lease holder). */
  id: string;
  /** Elect the one acting replica on a Lease `<name>` (default `hexmesh-rollouts`); absent: always act. */
  lease?: { namespace: string; name?: string; durationMs?: number };
  /** Time for proxies to see a routing change before pods go (default 1 s). */
  settleMs?: number;
  log?(msg: string): void;
  now?: () => number;
}

/** One revision's workload as the status records it. */
interface WorkloadStatus {
  revision: number;
  hash: string;
  kind: 'ReplicaSet' | 'Deployment';
  name: string;
  /** The pod labels (beside the Service's selector) that select this revision. */
  selector: Record<string, string>;
  replicas: number;
}

interface HistoryItem {
  revision: number;
  hash: string;
  outcome: string;
  reason?: string;
  finishedAt?: string;
}

/** What the controller keeps in `status` (besides `conditions`, shared with the mirror). */
export interface KubeRolloutStatus {
  phase: RolloutPhase;
  message: string;
  reason?: string;
  revision: number;
  stableRevision: number;
  step: number;
  steps: number;
  canaryWeight: number;
  failedChecks: number;
  stable: WorkloadStatus;
  canary?: WorkloadStatus | null;
  history: HistoryItem[];
  conditions?: Condition[];
}

interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

interface RolloutObject extends KubernetesObject {
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  spec?: unknown;
  status?: Partial<KubeRolloutStatus>;
}

interface DeploymentObject extends KubernetesObject {
  metadata: { name: string; namespace: string; uid?: string };
  spec: {
    replicas?: number;
    paused?: boolean;
    selector: { matchLabels?: Record<string, string> };
    template: { metadata?: { labels?: Record<string, string> }; spec?: unknown };
  };
}

interface Tracked {
  key: string;
  busy: boolean;
  again: boolean;
  run: { inbox: Inbox; hash: string } | undefined;
  /** The status last written (newer than the informer's copy). */
  status: KubeRolloutStatus | undefined;
  seenCommands: Set<string>;
  /** The last failure logged (a failure that repeats every retry is logged once). */
  lastError: string | undefined;
}

/** A short, stable hash of a pod template (key order does not matter), as a label value. */
export function templateHash(template: unknown): string {
  const canon = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, canon((v as Record<string, unknown>)[k])]),
        )
      : Array.isArray(v)
        ? v.map(canon)
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canon(template)))
    .digest('hex')
    .slice(0, 10);
}

const ids = (service: string, revision: number, n: number) =>
  Array.from({ length: n }, (_, i) => `${service}-r${revision}-${i + 1}`);

export class DeploymentRollouts {
  readonly #o: DeploymentRolloutsOptions;
  readonly #now: () => number;
  readonly #tracked = new Map<string, Tracked>();
  readonly #runs = new Set<Promise<void>>();
  readonly #runtimes = new Set<ReplicaSetRuntime>();
  #api: KubeApi | undefined;
  #rollouts: KubeInformer<RolloutObject> | undefined;
  #deployments: KubeInformer<DeploymentObject> | undefined;
  #lease: LeaseElection | undefined;
  #closed = false;

  constructor(o: DeploymentRolloutsOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.#lease ? this.#lease.isLeader : !this.#closed;
  }

  async start(api?: KubeApi): Promise<void> {
    this.#api = api ?? (await KubeApi.load(this.#o.kubeconfig));
    this.#rollouts = this.#watch<RolloutObject>(`${ROLLOUTS}/rollouts`, (o) =>
      this.#enqueue(`${o.metadata.namespace}/${o.metadata.name}`),
    );
    this.#deployments = this.#watch<DeploymentObject>('/apis/apps/v1/deployments', (d) => {
      for (const r of this.#rollouts?.list(d.metadata.namespace) ?? [])
        if ((r.spec as { workloadRef?: { name?: string } })?.workloadRef?.name === d.metadata.name)
          this.#enqueue(`${r.metadata.namespace}/${r.metadata.name}`);
    });
    if (this.#o.lease) {
      this.#lease = new LeaseElection(this.#api, {
        namespace: this.#o.lease.namespace,
        name: this.#o.lease.name ?? 'hexmesh-rollouts',
        id: this.#o.id,
        leaseDurationMs: this.#o.lease.durationMs ?? 15_000,
        onChange: (leader) => {
          this.#log(leader ? 'acting on Rollouts (leader)' : 'no longer the Rollouts leader');
          if (leader) this.#resync();
        },
        onError: (e) => this.#log(`lease: ${(e as Error).message}`),
      });
      await this.#lease.start();
    }
  }

  #watch<T extends KubernetesObject>(path: string, onObject: (o: T) => void): KubeInformer<T> {
    const informer = this.#api!.informer<T>(path);
    informer.on('add', onObject);
    informer.on('update', onObject);
    // A deleted Rollout aborts its run; a deleted Deployment is reported by its Rollouts.
    informer.on('delete', onObject);
    let last = '';
    informer.on('connect', () => (last = ''));
    const restart = (err?: unknown) => {
      if (this.#closed) return;
      const msg = (err as Error)?.message ?? 'watch ended';
      if (msg !== last) this.#log(`${path}: ${msg}; watching again every 2 s`);
      last = msg;
      setTimeout(() => {
        if (!this.#closed) informer.start().then(() => this.#resync(), restart);
      }, 2000).unref();
    };
    informer.on('error', restart);
    informer.start().then(() => this.#resync(), restart);
    return informer;
  }

  #resync(): void {
    for (const r of this.#rollouts?.list() ?? []) this.#enqueue(`${r.metadata.namespace}/${r.metadata.name}`);
  }

  /** Level-based: look at the Rollout now; a run in progress only takes commands and supersession. */
  #enqueue(key: string): void {
    if (this.#closed || !this.isLeader) return;
    let t = this.#tracked.get(key);
    if (!t) {
      t = {
        key,
        busy: false,
        again: false,
        run: undefined,
        status: undefined,
        seenCommands: new Set(),
        lastError: undefined,
      };
      this.#tracked.set(key, t);
    }
    const [ns, name] = key.split('/');
    const obj = this.#rollouts?.get(name, ns);
    if (obj) this.#takeCommand(t, obj);
    if (t.run) {
      const d = obj && this.#deploymentOf(obj);
      if (!obj) t.run.inbox.push({ action: 'abort', id: 'deleted', at: this.#now() });
      else if (d && templateHash(d.spec.template) !== t.run.hash)
        t.run.inbox.push({ action: 'abort', id: 'superseded', at: this.#now() });
      return;
    }
    if (t.busy) {
      t.again = true;
      return;
    }
    t.busy = true;
    const p = this.#reconcile(t)
      .then(() => (t.lastError = undefined))
      .catch((err: unknown) => {
        const msg = (err as Error).message;
        if (msg !== t.lastError) this.#log(`${key}: ${msg}; retrying every 2 s`);
        t.lastError = msg;
        setTimeout(() => this.#enqueue(key), 2000).unref();
      })
      .finally(() => {
        t.busy = false;
        this.#runs.delete(p);
        if (t.again) {
          t.again = false;
          this.#enqueue(key);
        }
      });
    this.#runs.add(p);
  }

  #deploymentOf(r: RolloutObject): DeploymentObject | undefined {
    const ref = (r.spec as { workloadRef?: { name?: string } })?.workloadRef;
    return ref?.name ? this.#deployments?.get(ref.name, r.metadata.namespace) : undefined;
  }

  /** `hexmesh.io/command`: handed to the run in progress, then removed from the object. */
  #takeCommand(t: Tracked, obj: RolloutObject): void {
    const action = obj.metadata.annotations?.[COMMAND_ANNOTATION];
    if (action === undefined) return;
    const id = `${obj.metadata.uid}/${obj.metadata.resourceVersion}`;
    if (t.seenCommands.has(id)) return;
    t.seenCommands.add(id);
    if (ACTIONS.has(action)) t.run?.inbox.push({ action: action as RolloutAction, id, at: this.#now() });
    else this.#log(`${t.key}: unknown command ${JSON.stringify(action)} (promote, pause, resume, abort)`);
    const path = `${ROLLOUTS}/namespaces/${obj.metadata.namespace}/rollouts/${obj.metadata.name}`;
    void this.#api!.request(
      'PATCH',
      path,
      { metadata: { annotations: { [COMMAND_ANNOTATION]: null } } },
      'application/merge-patch+json',
    ).catch(() => {});
  }

  async #reconcile(t: Tracked): Promise<void> {
    const [ns, name] = t.key.split('/');
    const obj = this.#rollouts?.get(name, ns);
    if (!obj) return;
    const parsed = rolloutSchema.safeParse({
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'Rollout',
      metadata: { name, namespace: ns },
      spec: obj.spec,
    });
    // Invalid ones are reported by the mirror (Accepted: False); template ones run under `hexmesh up`.
    if (!parsed.success || !parsed.data.spec.workloadRef) return;
    const r = parsed.data;
    const d = this.#deploymentOf(obj);
    if (!d) {
      this.#log(`${t.key}: no Deployment ${ns}/${r.spec.workloadRef!.name}`);
      return;
    }
    const hash = templateHash(d.spec.template);
    let st = t.status ?? (obj.status?.stable ? (obj.status as KubeRolloutStatus) : undefined);
    if (!st) st = t.status = await this.#adopt(obj, d, hash);
    t.status = st;
    const inProgress = !TERMINAL_PHASES.has(st.phase) && st.canary;
    if (inProgress && st.canary!.hash === hash) {
      this.#log(`${t.key}: resuming revision ${st.revision} at step ${st.step}`);
      return this.#run(t, obj, r, d, st.canary!.revision, hash, st.step);
    }
    if (inProgress) await this.#dropInterrupted(t, obj, r, 'superseded by a newer template');
    if (hash === st.stable.hash) return;
    // The template that just failed waits for a change; one that failed before another ran may run again.
    const last = st.history.at(-1);
    if (last && last.hash === hash && last.outcome !== 'Succeeded') return;
    await this.#run(t, obj, r, d, Math.max(st.revision, st.stableRevision) + 1, hash, 0);
  }

  /** First sight: pause the Deployment; its pods (by their pod-template-hash) are revision 0. */
  async #adopt(obj: RolloutObject, d: DeploymentObject, hash: string): Promise<KubeRolloutStatus> {
    const api = this.#api!;
    const ns = d.metadata.namespace;
    const dPath = `/apis/apps/v1/namespaces/${ns}/deployments/${d.metadata.name}`;
    const sel = Object.entries(d.spec.selector.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const r = await api.request(
      'GET',
      `/apis/apps/v1/namespaces/${ns}/replicasets?labelSelector=${encodeURIComponent(sel)}`,
    );
    if (r.status !== 200) throw new KubeApiError('GET', `replicasets of ${dPath}`, r);
    const owned = (
      JSON.parse(r.body) as {
        items: {
          metadata: {
            labels?: Record<string, string>;
            annotations?: Record<string, string>;
            ownerReferences?: { uid: string }[];
          };
          spec?: { replicas?: number };
        }[];
      }
    ).items
      .filter((rs) => rs.metadata.ownerReferences?.some((o) => o.uid === d.metadata.uid))
      .sort(
        (a, b) =>
          (b.spec?.replicas ?? 0) - (a.spec?.replicas ?? 0) ||
          Number(b.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0) -
            Number(a.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0),
      );
    const podHash = owned[0]?.metadata.labels?.[HASH_LABEL];
    if (!podHash)
      throw new HexmeshError(
        'HEXMESH_ERR_NOT_FOUND',
        `Deployment ${ns}/${d.metadata.name} has no ReplicaSet with a ${HASH_LABEL} yet`,
      );
    if (!d.spec.paused) {
      const p = await api.request('PATCH', dPath, { spec: { paused: true } }, 'application/merge-patch+json');
      if (p.status !== 200) throw new KubeApiError('PATCH', dPath, p);
    }
    const status: KubeRolloutStatus = {
      phase: 'Succeeded',
      message: `revision 0 (the pods of Deployment ${d.metadata.name}) is stable; the Deployment is paused`,
      revision: 0,
      stableRevision: 0,
      step: 0,
      steps: 0,
      canaryWeight: 0,
      failedChecks: 0,
      stable: {
        revision: 0,
        hash,
        kind: 'Deployment',
        name: d.metadata.name,
        selector: { [HASH_LABEL]: podHash },
        replicas: d.spec.replicas ?? 1,
      },
      canary: null,
      history: [],
    };
    await this.#publish(obj, status);
    this.#log(`${ns}/${obj.metadata.name}: adopted Deployment ${d.metadata.name} as revision 0`);
    return status;
  }

  /** A revision left in progress whose template changed since: all traffic to stable, its pods gone. */
  async #dropInterrupted(t: Tracked, obj: RolloutObject, r: Rollout, reason: string): Promise<void> {
    const st = t.status!;
    const c = st.canary!;
    const traffic = this.#traffic(obj, r);
    await this.#write(`route all traffic to revision ${st.stable.revision}`, () =>
      traffic.apply({ stable: st.stable.selector, canary: st.stable.selector, weight: 0 }),
    );
    const runtime = new ReplicaSetRuntime(this.#api!, obj.metadata.namespace);
    runtime.register(c.revision, { kind: c.kind, name: c.name }, ['x']);
    await runtime.stopInstance('x', { drain: true });
    st.history = [
      ...st.history,
      { revision: c.revision, hash: c.hash, outcome: 'Failed', reason, finishedAt: this.#iso() },
    ].slice(-10);
    Object.assign(st, { phase: 'Failed', reason, canaryWeight: 0, canary: null });
    await this.#publish(obj, st);
  }

  #traffic(obj: RolloutObject, r: Rollout): KubeRolloutTraffic {
    return new KubeRolloutTraffic(this.#api!, obj.metadata.namespace, r.spec.service, {
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'Rollout',
      name: obj.metadata.name,
      uid: obj.metadata.uid,
    });
  }

  async #run(
    t: Tracked,
    obj: RolloutObject,
    r: Rollout,
    d: DeploymentObject,
    revision: number,
    hash: string,
    fromStep: number,
  ): Promise<void> {
    const ns = obj.metadata.namespace;
    const st = t.status!;
    const stable = st.stable;
    // The Deployment's replicas at adoption, carried from revision to revision: the Deployment
    // itself is scaled to zero once its own pods (revision 0) are replaced.
    const replicas = stable.replicas;
    const rsName = `${d.metadata.name}-${hash}`;
    const podLabels = { [REVISION_LABEL]: String(revision), [HASH_LABEL]: hash };
    const template = structuredClone(d.spec.template);
    template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...podLabels } };
    const rs = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: rsName,
        namespace: ns,
        labels: { ...template.metadata.labels, [ROLLOUT_LABEL]: obj.metadata.name },
        annotations: { [REVISION_LABEL]: String(revision) },
        ownerReferences: [
          {
            apiVersion: 'hexmesh.io/v1alpha1',
            kind: 'Rollout',
            name: obj.metadata.name,
            uid: obj.metadata.uid,
            controller: true,
          },
        ],
      },
      spec: {
        replicas: 0,
        selector: { matchLabels: { ...d.spec.selector.matchLabels, [HASH_LABEL]: hash } },
        template,
      },
    };
    const runtime = new ReplicaSetRuntime(this.#api!, ns);
    this.#runtimes.add(runtime);
    runtime.register(
      stable.revision,
      { kind: stable.kind, name: stable.name },
      ids(r.spec.service, stable.revision, stable.replicas),
    );
    runtime.register(revision, { kind: 'ReplicaSet', name: rsName, create: rs });
    // The shared walk reads replicas from a template; the pods' own template is the ReplicaSet's.
    const rollout: TemplateRollout = {
      ...r,
      spec: {
        ...r.spec,
        template: { command: 'kubernetes', args: [], env: {}, labels: {}, replicas, port: 'auto' },
      },
    };
    const canary: WorkloadStatus = {
      revision,
      hash,
      kind: 'ReplicaSet',
      name: rsName,
      selector: { [REVISION_LABEL]: String(revision) },
      replicas,
    };
    const steps = r.spec.strategy.canary ? canarySteps(r.spec.strategy.canary).length : 0;
    const resumed = fromStep > 0 || st.revision === revision;
    const status: RolloutStatus = {
      namespace: ns,
      name: obj.metadata.name,
      service: r.spec.service,
      strategy: r.spec.strategy.canary ? 'canary' : 'blueGreen',
      phase: 'Initializing',
      revision,
      stableRevision: stable.revision,
      step: fromStep,
      steps,
      weight: 0,
      failedChecks: resumed ? st.failedChecks : 0,
      threshold: (r.spec.strategy.canary?.analysis ?? r.spec.strategy.blueGreen?.analysis)?.threshold ?? 1,
      analysis: [],
      message: '',
      instances: { stable: [], canary: [] },
      startedAt: this.#now(),
      updatedAt: this.#now(),
    };
    let ended = false;
    const publish = async () => {
      if (this.#closed || ended) return;
      Object.assign(st, {
        phase: status.phase,
        message: status.message,
        revision,
        step: status.step,
        steps: status.steps,
        canaryWeight: status.weight,
        failedChecks: status.failedChecks,
        canary,
      });
      if (status.reason !== undefined) st.reason = status.reason;
      else delete st.reason;
      // The run's end, folded into the status in the same write as its phase.
      if (TERMINAL_PHASES.has(status.phase)) {
        ended = true;
        st.history = [
          ...st.history,
          {
            revision,
            hash,
            outcome: status.phase,
            ...(status.reason ? { reason: status.reason } : {}),
            finishedAt: this.#iso(),
          },
        ].slice(-10);
        if (status.phase === 'Succeeded') Object.assign(st, { stable: canary, stableRevision: revision });
        st.canary = null;
      }
      await this.#publish(obj, st);
    };
    const inbox = new Inbox();
    t.run = { inbox, hash };
    this.#log(`${t.key}: revision ${revision} (ReplicaSet ${rsName}) from step ${fromStep}`);
    try {
      const res = await runRevision({
        rollout,
        revision,
        stable: {
          revision: stable.revision,
          selector: stable.selector,
          ids: ids(r.spec.service, stable.revision, stable.replicas),
        },
        runtime,
        traffic: this.#traffic(obj, r),
        status,
        inbox,
        publish,
        write: (what, fn) => this.#write(what, fn),
        settleMs: this.#o.settleMs ?? 1000,
        // Blue/green keeps the old pods for scaleDownDelay (instant undo), then scales them away.
        retire: (old: RevisionSet, delayMs: number) =>
          void setTimeout(() => {
            if (!this.#closed)
              for (const id of old.ids) void runtime.stopInstance(id, { drain: true }).catch(() => {});
          }, delayMs).unref(),
        scaleWithWeight: true,
        fromStep,
        now: this.#now,
      });
      if (!ended && !this.#closed && res.routed !== false)
        this.#log(`${t.key}: revision ${revision} ended ${res.outcome} without a final status`);
    } finally {
      t.run = undefined;
      this.#runtimes.delete(runtime);
    }
  }

  /** A routing write, retried (250 ms doubling to 5 s) until it lands; rejects once closed. */
  async #write(what: string, fn: () => Promise<void>): Promise<void> {
    for (let delay = 250, logged = false; ; delay = Math.min(delay * 2, 5000)) {
      if (this.#closed) throw new HexmeshError('HEXMESH_ERR_DRAINING', `${what}: not done; closing`);
      let failing = 'not the leader';
      if (this.isLeader)
        try {
          return await fn();
        } catch (err) {
          failing = (err as Error).message;
        }
      if (!logged) this.#log(`${what}: ${failing}; retrying`);
      logged = true;
      await sleep(delay);
    }
  }

  /** Merge-patch the status subresource; the mirror's conditions (Accepted) are kept. */
  async #publish(obj: RolloutObject, st: KubeRolloutStatus): Promise<void> {
    if (this.#closed) return;
    const cur = this.#rollouts?.get(obj.metadata.name, obj.metadata.namespace) ?? obj;
    const prev = (cur.status?.conditions ?? []) as Condition[];
    const progressing = this.#progressing(st, cur.metadata.generation);
    const before = prev.find((c) => c.type === 'Progressing');
    if (before && before.status === progressing.status)
      progressing.lastTransitionTime = before.lastTransitionTime;
    const conditions = before
      ? prev.map((c) => (c.type === 'Progressing' ? progressing : c))
      : [...prev, progressing];
    const { conditions: _c, ...rest } = st;
    const path = `${ROLLOUTS}/namespaces/${obj.metadata.namespace}/rollouts/${obj.metadata.name}/status`;
    // The whole status at once (a merge patch would merge the old selector's labels into the new).
    const r = await this.#api!.request(
      'PATCH',
      path,
      [{ op: 'add', path: '/status', value: JSON.parse(JSON.stringify({ ...rest, conditions })) }],
      'application/json-patch+json',
    );
    if (r.status === 404) return;
    if (r.status !== 200)
      this.#log(
        `cannot write the status of ${obj.metadata.namespace}/${obj.metadata.name}: ${new KubeApiError('PATCH', path, r).message}`,
      );
  }

  #progressing(st: KubeRolloutStatus, generation: number | undefined): Condition {
    const [status, reason] =
      st.phase === 'Succeeded'
        ? (['True', 'NewRevisionAvailable'] as const)
        : st.phase === 'Failed'
          ? (['False', 'RolloutFailed'] as const)
          : st.phase === 'RolledBack'
            ? (['False', 'RolledBack'] as const)
            : st.phase === 'Paused'
              ? (['Unknown', 'RolloutPaused'] as const)
              : (['True', 'RolloutProgressing'] as const);
    return {
      type: 'Progressing',
      status,
      reason,
      message: (st.reason ? `${st.message}: ${st.reason}` : st.message).slice(0, 32_000),
      lastTransitionTime: new Date(Math.floor(this.#now() / 1000) * 1000).toISOString().replace('.000Z', 'Z'),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }

  #log(msg: string): void {
    this.#o.log?.(`rollouts: ${msg}`);
  }

  /**
   * Stop: no more writes; runs in progress stop where they are (their status stays as
   * written, for the next leader to resume). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#tracked.values())
      t.run?.inbox.push({ action: 'abort', id: 'shutdown', at: this.#now() });
    await Promise.all([...this.#runtimes].map((r) => r.close()));
    await Promise.allSettled([...this.#runs]);
    await Promise.all([this.#rollouts?.stop(), this.#deployments?.stop()].map((p) => p?.catch(() => {})));
    await this.#lease?.close({ resign: true });
  }
}
