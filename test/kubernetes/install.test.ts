/**
 * `hexmesh install --kubernetes` against a real kube-apiserver: its output applies cleanly
 * (server-side apply, as `kubectl apply --server-side`) and again without changing anything;
 * the real `hexmesh control --kubernetes` then runs as the installed ServiceAccount — a token
 * from the TokenRequest API, so it holds exactly the installed RBAC and nothing else — and
 * mirrors the cluster, takes its Leases, writes the webhook's caBundle and runs a Rollout;
 * `hexmesh check --kubernetes` reports CRDs, RBAC and webhook ok.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../support/cli.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';
import { spawnKubeControl, type KubeControl } from '../support/kube-control.ts';
import { playControllers } from '../support/kube-controllers.ts';
import { until } from '../control/discovery-support.ts';

const skip = kubeApiserverMissingReason();
const NS = 'hx-system';

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number };
}

/** Where an object of a kind the install prints lives in the API. */
function pathOf(o: Manifest): string {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const plural: Record<string, string> = {
    Namespace: 'namespaces',
    CustomResourceDefinition: 'customresourcedefinitions',
    ServiceAccount: 'serviceaccounts',
    ClusterRole: 'clusterroles',
    ClusterRoleBinding: 'clusterrolebindings',
    Role: 'roles',
    RoleBinding: 'rolebindings',
    Service: 'services',
    Deployment: 'deployments',
    MutatingWebhookConfiguration: 'mutatingwebhookconfigurations',
  };
  assert.ok(plural[o.kind], `unexpected kind ${o.kind}`);
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const ns = o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
  return `${base}${ns}/${plural[o.kind]}/${o.metadata.name}`;
}

describe('kubernetes: hexmesh install --kubernetes', { skip }, () => {
  let kube: KubeApiServer;
  let objects: Manifest[];
  let dir: string;
  let control: KubeControl | undefined;
  let stopPlaying: (() => Promise<void>) | undefined;
  let saConfig: string;
  const tpl = (image: string, labels: Record<string, string> = { app: 'shop' }) => ({
    metadata: { labels },
    spec: { containers: [{ name: 'shop', image }] },
  });
  const rolloutStatus = async () =>
    (
      await kube.must<{
        status?: {
          phase?: string;
          step?: number;
          canaryWeight?: number;
          stableRevision?: number;
          conditions?: { type: string; status: string }[];
        };
      }>('GET', '/apis/hexmesh.io/v1alpha1/namespaces/default/rollouts/shop')
    ).status ?? {};
  const patch = (path: string, body: unknown) =>
    kube.request('PATCH', path, JSON.stringify(body), { 'content-type': 'application/merge-patch+json' });

  /**
   * What a re-apply must not change: the generation of objects with a spec the API server
   * versions (a CRD's status keeps moving for a while after it is Established, which bumps its
   * resourceVersion only), the resourceVersion of the others.
   */
  const version = (o: Manifest) =>
    `${o.kind}/${o.metadata.name}@${o.metadata.generation !== undefined ? `g${o.metadata.generation}` : o.metadata.resourceVersion}`;

  /** Server-side apply of every object, as kubectl apply --server-side; their versions after. */
  const apply = async (): Promise<string[]> => {
    const versions: string[] = [];
    for (const o of objects) {
      const r = await kube.request(
        'PATCH',
        `${pathOf(o)}?fieldManager=kubectl&force=true`,
        JSON.stringify(o),
        { 'content-type': 'application/apply-patch+yaml' },
      );
      assert.ok(r.status === 200 || r.status === 201, `${o.kind} ${o.metadata.name}: ${r.status} ${r.body}`);
      versions.push(version(r.json() as Manifest));
      if (o.kind === 'CustomResourceDefinition')
        await until(
          async () => {
            const c = await kube.must<{ status?: { conditions?: { type: string; status: string }[] } }>(
              'GET',
              pathOf(o),
            );
            return (
              c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') || undefined
            );
          },
          60_000,
          `CRD ${o.metadata.name} established`,
        );
    }
    return versions;
  };

  before(async () => {
    kube = await KubeApiServer.start();
    dir = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-install-'));
  });

  after(async () => {
    control?.close();
    await stopPlaying?.();
    await kube?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints manifests that apply cleanly, and re-apply without a change', async () => {
    const r = await runCli([
      'install',
      '--kubernetes',
      '--namespace',
      NS,
      '--image',
      'registry.example/hexmesh:test',
      '--trust-domain',
      'test.example',
      '-o',
      'json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    objects = (JSON.parse(r.stdout) as { kind: string; items: Manifest[] }).items;
    const kinds = objects.map((o) => o.kind);
    for (const k of [
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'Deployment',
      'MutatingWebhookConfiguration',
    ])
      assert.ok(kinds.includes(k), `no ${k} in ${kinds.join(', ')}`);
    assert.equal(kinds.filter((k) => k === 'CustomResourceDefinition').length, 7);
    await apply();
    // Each object as it stands after the first apply; the second must leave every one so.
    const settled = await Promise.all(
      objects.map(async (o) => version(await kube.must<Manifest>('GET', pathOf(o)))),
    );
    const second = await apply();
    assert.deepEqual(second, settled, 'a second apply changes no object');
    // The YAML form is the same objects.
    const y = await runCli([
      'install',
      '--kubernetes',
      '--namespace',
      NS,
      '--image',
      'registry.example/hexmesh:test',
      '--trust-domain',
      'test.example',
    ]);
    const { parseAllDocuments } = await import('yaml');
    assert.deepEqual(
      parseAllDocuments(y.stdout).map((d) => d.toJS() as unknown),
      objects,
    );
  });

  it('the control plane works with only the installed RBAC, and check reports ok', async () => {
    // A token of the installed ServiceAccount, and a kubeconfig with nothing else in it.
    const tr = await kube.must<{ status: { token: string } }>(
      'POST',
      `/api/v1/namespaces/${NS}/serviceaccounts/hexmesh-control/token`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    );
    saConfig = join(dir, 'sa.kubeconfig');
    writeFileSync(
      saConfig,
      `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ${kube.url}
    certificate-authority-data: ${Buffer.from(kube.caPem).toString('base64')}
users:
- name: sa
  user:
    token: ${tr.status.token}
contexts:
- name: c
  context: {cluster: c, user: sa}
current-context: c
`,
      { mode: 0o600 },
    );
    // Least privilege: what the control plane never does, it may not do.
    const asSa = async (method: string, path: string) =>
      (await kube.request(method, path, undefined, { authorization: `Bearer ${tr.status.token}` })).status;
    assert.equal(await asSa('GET', '/api/v1/secrets'), 403);
    assert.equal(await asSa('GET', '/api/v1/pods'), 403);
    assert.equal(await asSa('DELETE', '/apis/apps/v1/namespaces/default/deployments/x'), 403);
    assert.equal(
      await asSa('GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/other'),
      403,
    );

    // An app with a Deployment (and the ReplicaSet its controller would have made) to roll out.
    await kube.must('POST', '/api/v1/namespaces/default/services', {
      metadata: { name: 'shop' },
      spec: { selector: { app: 'shop' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    });
    const d = await kube.must<{ metadata: { uid: string } }>(
      'POST',
      '/apis/apps/v1/namespaces/default/deployments',
      {
        metadata: { name: 'shop' },
        spec: { replicas: 2, selector: { matchLabels: { app: 'shop' } }, template: tpl('shop:v1') },
      },
    );
    await kube.must('POST', '/apis/apps/v1/namespaces/default/replicasets', {
      metadata: {
        name: 'shop-aaa111',
        labels: { app: 'shop', 'pod-template-hash': 'aaa111' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name: 'shop', uid: d.metadata.uid, controller: true },
        ],
      },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'shop', 'pod-template-hash': 'aaa111' } },
        template: tpl('shop:v1', { app: 'shop', 'pod-template-hash': 'aaa111' }),
      },
    });
    stopPlaying = playControllers(kube, 'default', 'shop', d.metadata.uid);

    control = spawnKubeControl(
      saConfig,
      ['--inject-listen', '127.0.0.1:0', '--trust-domain', 'test.example'],
      {
        POD_NAMESPACE: NS,
      },
    );
    const url = await control.line(/listening on (http:\/\/\S+)/, 120_000, 'control plane listening');
    // The mirror reads Services cluster-wide.
    await until(
      async () =>
        (await fetch(`${url}/v1/resources/Service/default/shop`)).status === 200 ? true : undefined,
      60_000,
      `Service mirrored\n${control.err}`,
    );
    // Both elections take their Lease in the control plane's namespace.
    for (const lease of ['hexmesh-kubernetes', 'hexmesh-rollouts'])
      await until(
        async () =>
          (await kube.request('GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${lease}`))
            .status === 200 || undefined,
        60_000,
        `Lease ${lease}\n${control.err}`,
      );
    // The webhook's caBundle is written by the control plane (the manifests leave it out).
    await until(
      async () => {
        const w = await kube.must<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(
          'GET',
          '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hexmesh-injector',
        );
        return w.webhooks.every((h) => h.clientConfig.caBundle) || undefined;
      },
      60_000,
      `caBundle written\n${control.err}`,
    );
    // A Rollout runs end to end: Deployments, ReplicaSets, Services and HTTPRoutes written as the ServiceAccount.
    await kube.must('POST', '/apis/hexmesh.io/v1alpha1/namespaces/default/rollouts', {
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'Rollout',
      metadata: { name: 'shop' },
      spec: {
        service: 'shop',
        workloadRef: { kind: 'Deployment', name: 'shop' },
        strategy: { canary: { steps: [{ setWeight: 50 }] } },
      },
    });
    await until(
      async () => (await rolloutStatus()).phase === 'Succeeded' || undefined,
      60_000,
      `adopted\n${control.err}`,
    );
    await patch('/apis/apps/v1/namespaces/default/deployments/shop', { spec: { template: tpl('shop:v2') } });
    await until(
      async () => ((await rolloutStatus()).stableRevision === 1 ? true : undefined),
      90_000,
      `revision 1 promoted\n${control.err}`,
    );
    const st = await rolloutStatus();
    assert.equal(st.phase, 'Succeeded');
    // The mirror's Accepted and the rollout's Progressing live side by side.
    await until(
      async () => {
        const types = ((await rolloutStatus()).conditions ?? []).map((c) => c.type).sort();
        return types.join() === 'Accepted,Progressing' || undefined;
      },
      30_000,
      'both conditions',
    );
    // The rollout's route reached the mesh: mirrored into the control plane with its weights,
    // and Accepted in its Gateway API status.
    await until(
      async () => {
        const r = await fetch(`${url}/v1/resources/HTTPRoute/default/shop-rollout`);
        if (r.status !== 200) return undefined;
        const doc = (await r.json()) as {
          spec: { rules: { backendRefs: { name: string; weight: number }[] }[] };
        };
        const w = Object.fromEntries(doc.spec.rules[0].backendRefs.map((b) => [b.name, b.weight]));
        return (w['shop-stable'] === 100 && w['shop-canary'] === 0) || undefined;
      },
      30_000,
      `the rollout's HTTPRoute in the mesh\n${control.err}`,
    );
    await until(
      async () => {
        const route = await kube.must<{
          status?: { parents?: { conditions?: { type: string; status: string }[] }[] };
        }>('GET', '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/shop-rollout');
        const c = route.status?.parents?.[0]?.conditions ?? [];
        return (
          (c.find((x) => x.type === 'Accepted')?.status === 'True' &&
            c.find((x) => x.type === 'ResolvedRefs')?.status === 'True') ||
          undefined
        );
      },
      30_000,
      `the rollout's HTTPRoute Accepted\n${control.err}`,
    );
    assert.doesNotMatch(control.err, /forbidden/i, control.err);

    const check = await runCli(
      [
        'check',
        '--kubernetes',
        '--kubeconfig',
        kube.kubeconfig,
        '--control-namespace',
        NS,
        '--control',
        url,
        '-o',
        'json',
      ],
      120_000,
    );
    const results = JSON.parse(check.stdout) as { name: string; status: string; message: string }[];
    const by = Object.fromEntries(results.map((x) => [x.name, x]));
    for (const name of ['kubernetes-crds', 'kubernetes-rbac', 'kubernetes-webhook'])
      assert.equal(by[name]?.status, 'ok', `${name}: ${by[name]?.message}`);
    assert.match(by['kubernetes-rbac'].message, /holds all \d+ permissions/);
  });

  it('a control plane killed mid-rollout (SIGKILL): its successor resumes the revision at its step', async () => {
    await patch('/apis/hexmesh.io/v1alpha1/namespaces/default/rollouts/shop', {
      spec: { strategy: { canary: { steps: [{ setWeight: 50 }, { pause: {} }] } } },
    });
    await patch('/apis/apps/v1/namespaces/default/deployments/shop', { spec: { template: tpl('shop:v3') } });
    await until(
      async () => {
        const st = await rolloutStatus();
        return (st.phase === 'Paused' && st.canaryWeight === 50) || undefined;
      },
      90_000,
      `revision 2 paused at 50%\n${control!.err}`,
    );
    control!.close();
    control = spawnKubeControl(saConfig, ['--trust-domain', 'test.example'], { POD_NAMESPACE: NS });
    // The dead replica's Lease runs out (--leader-ttl, 10 s) before the successor acts.
    const successor = control;
    await until(
      () => /resuming revision 2 at step 1/.test(successor.err) || undefined,
      120_000,
      `the successor resumes\n${successor.err}`,
    );
    await until(
      async () => {
        const st = await rolloutStatus();
        return (st.phase === 'Paused' && st.canaryWeight === 50) || undefined;
      },
      60_000,
      `paused again at 50%\n${control.err}`,
    );
    await patch('/apis/hexmesh.io/v1alpha1/namespaces/default/rollouts/shop', {
      metadata: { annotations: { 'hexmesh.io/command': 'promote' } },
    });
    await until(
      async () => ((await rolloutStatus()).stableRevision === 2 ? true : undefined),
      60_000,
      `revision 2 promoted\n${control.err}`,
    );
    assert.equal((await rolloutStatus()).phase, 'Succeeded');
    assert.doesNotMatch(control.err, /forbidden/i, control.err);
  });
});
