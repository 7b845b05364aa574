/**
 * Rollouts on Deployments against a real kube-apiserver: a Rollout referencing a Deployment
 * runs a changed pod template as a new ReplicaSet beside the old one, scaled with the canary
 * weight while the HTTPRoute's weights shift step by step; a restart of the controller
 * mid-rollout resumes at the recorded step; an aborted revision is scaled back to zero with
 * all traffic on stable.
 *
 * No controller-manager runs here, so the test plays the two controllers the rollout leans
 * on (`playControllers`): the ReplicaSet controller (a ReplicaSet's status reports its
 * `spec.replicas` ready) and the Deployment controller (the Deployment's own ReplicaSet
 * follows the Deployment's `spec.replicas`, as it does for a paused Deployment). Pods are not
 * created: the rollout reads readiness from the ReplicaSet status, as kubectl does.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COMMAND_ANNOTATION, DeploymentRollouts } from '../../src/control/kubernetes/deployment-rollouts.ts';
import { ROOT } from '../support/cli.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';
import { until } from '../control/discovery-support.ts';
import { playControllers } from '../support/kube-controllers.ts';

const skip = kubeApiserverMissingReason();
const NS = 'default';
const APPS = `/apis/apps/v1/namespaces/${NS}`;
const ROLLOUT = `/apis/hexmesh.io/v1alpha1/namespaces/${NS}/rollouts/web`;
const ROUTE = `/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/httproutes/web-rollout`;

interface Scalable {
  metadata: {
    name: string;
    uid: string;
    generation: number;
    labels?: Record<string, string>;
    ownerReferences?: { uid: string; kind: string }[];
  };
  spec: { replicas: number; paused?: boolean; template: unknown };
  status?: { readyReplicas?: number; observedGeneration?: number };
}

interface RolloutStatusView {
  phase?: string;
  step?: number;
  canaryWeight?: number;
  revision?: number;
  stableRevision?: number;
  stable?: { kind: string; name: string; selector: Record<string, string> };
  canary?: { name: string } | null;
  history?: { revision: number; outcome: string }[];
  conditions?: { type: string; status: string; reason: string }[];
}

const template = (image: string) => ({
  metadata: { labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image, ports: [{ containerPort: 8080 }] }] },
});

describe('kubernetes: Rollouts on Deployments', { skip }, () => {
  let kube: KubeApiServer;
  let stopPlaying: () => Promise<void>;
  const logs: string[] = [];
  const controllers: DeploymentRollouts[] = [];

  const get = <T>(path: string) => kube.must<T>('GET', path);
  const status = async () => (await get<{ status?: RolloutStatusView }>(ROLLOUT)).status ?? {};
  const weights = async () => {
    const r = await kube.request('GET', ROUTE);
    if (r.status !== 200) return undefined;
    const route = r.json() as { spec: { rules: { backendRefs: { name: string; weight: number }[] }[] } };
    return Object.fromEntries(route.spec.rules[0].backendRefs.map((b) => [b.name, b.weight]));
  };
  const replicas = async (name: string) => (await get<Scalable>(`${APPS}/replicasets/${name}`)).spec.replicas;
  const waitPhase = (phase: string, timeoutMs = 60_000) =>
    until(
      async () => ((await status()).phase === phase ? true : undefined),
      timeoutMs,
      `Rollout phase ${phase}\n${logs.join('\n')}`,
    );
  const command = (action: string) =>
    kube.request(
      'PATCH',
      ROLLOUT,
      JSON.stringify({ metadata: { annotations: { [COMMAND_ANNOTATION]: action } } }),
      { 'content-type': 'application/merge-patch+json' },
    );
  const setImage = (image: string) =>
    kube.request(
      'PATCH',
      `${APPS}/deployments/web`,
      JSON.stringify({ spec: { template: template(image) } }),
      {
        'content-type': 'application/merge-patch+json',
      },
    );
  const startController = async () => {
    const c = new DeploymentRollouts({
      kubeconfig: kube.kubeconfig,
      id: `test-${controllers.length}`,
      settleMs: 50,
      log: (m) => logs.push(m),
    });
    controllers.push(c);
    await c.start();
    return c;
  };

  before(async () => {
    kube = await KubeApiServer.start();
    await kube.installCrds(
      join(ROOT, 'deploy/kubernetes/gateway-api/gateway.networking.k8s.io_httproutes.yaml'),
    );
    await kube.installCrds(join(ROOT, 'deploy/kubernetes/crds/hexmesh.yaml'));
    await kube.must('POST', `/api/v1/namespaces/${NS}/services`, {
      metadata: { name: 'web' },
      spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    });
    const d = await kube.must<Scalable>('POST', `${APPS}/deployments`, {
      metadata: { name: 'web' },
      spec: { replicas: 4, selector: { matchLabels: { app: 'web' } }, template: template('web:v1') },
    });
    // What the Deployment controller would have made of it.
    await kube.must('POST', `${APPS}/replicasets`, {
      metadata: {
        name: 'web-5d8f7c',
        labels: { app: 'web', 'pod-template-hash': '5d8f7c' },
        annotations: { 'deployment.kubernetes.io/revision': '1' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: d.metadata.uid, controller: true },
        ],
      },
      spec: {
        replicas: 4,
        selector: { matchLabels: { app: 'web', 'pod-template-hash': '5d8f7c' } },
        template: {
          ...template('web:v1'),
          metadata: { labels: { app: 'web', 'pod-template-hash': '5d8f7c' } },
        },
      },
    });
    stopPlaying = playControllers(kube, NS, 'web', d.metadata.uid);
  });

  after(async () => {
    if (process.env.HEXMESH_TEST_LOGS) {
      process.stderr.write(`${logs.join('\n')}\n`);
      const rs = await get<{ items: Scalable[] }>(`${APPS}/replicasets`);
      process.stderr.write(`${rs.items.map((r) => `${r.metadata.name} ${r.spec.replicas}`).join('\n')}\n`);
      process.stderr.write(`${JSON.stringify(await status())}\n`);
    }
    for (const c of controllers) await c.close();
    await stopPlaying?.();
    await kube?.stop();
  });

  it('adopts the Deployment: its pods are revision 0, the Deployment is paused', async () => {
    await kube.must('POST', `/apis/hexmesh.io/v1alpha1/namespaces/${NS}/rollouts`, {
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'Rollout',
      metadata: { name: 'web' },
      spec: {
        service: 'web',
        workloadRef: { kind: 'Deployment', name: 'web' },
        progressDeadline: '60s',
        strategy: {
          canary: {
            steps: [
              { setWeight: 25 },
              { pause: { duration: '300ms' } },
              { setWeight: 50 },
              { pause: {} },
              { setWeight: 75 },
              { pause: { duration: '300ms' } },
            ],
          },
        },
      },
    });
    await startController();
    await until(async () => (await status()).stable, 60_000, `adoption\n${logs.join('\n')}`);
    const st = await status();
    assert.equal(st.phase, 'Succeeded');
    assert.deepEqual(st.stable, {
      ...st.stable,
      kind: 'Deployment',
      name: 'web',
      selector: { 'pod-template-hash': '5d8f7c' },
    });
    assert.equal((await get<Scalable>(`${APPS}/deployments/web`)).spec.paused, true);
  });

  it('a new pod template runs as a new ReplicaSet, scaled step by step with the weights', async () => {
    const oldTemplate = JSON.stringify((await get<Scalable>(`${APPS}/replicasets/web-5d8f7c`)).spec.template);
    assert.equal((await setImage('web:v2')).status, 200);
    const canary = await until(async () => (await status()).canary?.name, 30_000, 'a canary ReplicaSet');
    // Watch the ReplicaSet's scale and the route's weights until the indefinite pause.
    const seen: string[] = [];
    await until(
      async () => {
        const [w, n, st] = [await weights(), await replicas(canary).catch(() => 0), await status()];
        const row = `replicas ${n} weight ${w?.['web-canary'] ?? '-'}`;
        if (seen.at(-1) !== row) seen.push(row);
        return st.phase === 'Paused' && w?.['web-canary'] === 50 ? true : undefined;
      },
      60_000,
      `the pause at 50%\n${seen.join('\n')}\n${logs.join('\n')}`,
    );
    // ceil(25% of 4) = 1 pod takes 25%, ceil(50% of 4) = 2 pods take 50%; never weight before pods.
    assert.ok(seen.includes('replicas 1 weight 25'), seen.join('\n'));
    assert.ok(seen.includes('replicas 2 weight 50'), seen.join('\n'));
    assert.ok(!seen.some((r) => /replicas [01] weight 50/.test(r)), seen.join('\n'));
    assert.deepEqual(await weights(), { 'web-stable': 50, 'web-canary': 50 });
    const st = await status();
    assert.equal(st.step, 3);
    assert.equal(st.canaryWeight, 50);
    assert.equal(st.conditions?.find((c) => c.type === 'Progressing')?.reason, 'RolloutPaused');
    // The Services select revision 0 by its hash and revision 1 by its label, beside app=web.
    const svc = async (n: string) =>
      (await get<{ spec: { selector: Record<string, string> } }>(`/api/v1/namespaces/${NS}/services/${n}`))
        .spec.selector;
    assert.deepEqual(await svc('web-stable'), { app: 'web', 'pod-template-hash': '5d8f7c' });
    assert.deepEqual(await svc('web-canary'), { app: 'web', 'hexmesh.io/revision': '1' });
    // The old revision is untouched: its template and its 4 replicas.
    const old = await get<Scalable>(`${APPS}/replicasets/web-5d8f7c`);
    assert.equal(JSON.stringify(old.spec.template), oldTemplate);
    assert.equal(old.spec.replicas, 4);
  });

  it('a controller restart mid-rollout resumes at the recorded step, then promotes', async () => {
    await controllers[0].close();
    const before = await status();
    assert.equal(before.phase, 'Paused', 'closing leaves the status for the successor');
    await startController();
    await until(
      () => logs.some((l) => /resuming revision 1 at step 3/.test(l)) || undefined,
      60_000,
      `resumed\n${logs.join('\n')}`,
    );
    await until(
      async () =>
        (await weights())?.['web-canary'] === 50 && (await status()).phase === 'Paused' ? true : undefined,
      60_000,
      `resumed at 50%\n${logs.join('\n')}`,
    );
    const canary = (await status()).canary!.name;
    assert.equal(await replicas(canary), 2);
    assert.equal((await command('promote')).status, 200);
    await waitPhase('Succeeded');
    const st = await status();
    assert.equal(st.stableRevision, 1);
    assert.equal(st.stable?.name, canary);
    assert.equal(st.canary ?? undefined, undefined);
    assert.equal(await replicas(canary), 4);
    // The old revision is scaled away through its Deployment; all traffic on the new one.
    await until(
      async () => ((await replicas('web-5d8f7c')) === 0 ? true : undefined),
      30_000,
      'old pods gone',
    );
    assert.equal((await get<Scalable>(`${APPS}/deployments/web`)).spec.replicas, 0);
    assert.deepEqual(await weights(), { 'web-stable': 100, 'web-canary': 0 });
    assert.equal(
      (await get<{ metadata: { annotations?: Record<string, string> } }>(ROLLOUT)).metadata.annotations?.[
        COMMAND_ANNOTATION
      ],
      undefined,
      'the command is consumed',
    );
  });

  it('an aborted revision is scaled back to zero and all traffic returns to stable', async () => {
    const stableRs = (await status()).stable!.name;
    assert.equal((await setImage('web:v3')).status, 200);
    await until(
      async () => ((await weights())?.['web-canary'] === 25 ? true : undefined),
      60_000,
      `revision 2 at 25%\n${logs.join('\n')}`,
    );
    const canary = (await status()).canary!.name;
    assert.notEqual(canary, stableRs);
    assert.equal((await command('abort')).status, 200);
    await waitPhase('RolledBack');
    assert.deepEqual(await weights(), { 'web-stable': 100, 'web-canary': 0 });
    assert.equal(await replicas(canary), 0);
    assert.equal(await replicas(stableRs), 4);
    const st = await status();
    assert.equal(st.stableRevision, 1);
    assert.deepEqual(
      st.history?.map((h) => `${h.revision} ${h.outcome}`),
      ['1 Succeeded', '2 RolledBack'],
    );
    assert.equal(st.conditions?.find((c) => c.type === 'Progressing')?.status, 'False');
    // The same template is not run again by itself (a new change is needed).
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await status()).phase, 'RolledBack');
  });
});
