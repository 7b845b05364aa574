/**
 * CRDs against a real kube-apiserver: the upstream Gateway API CRDs and hexmesh's own
 * (generated from the zod schemas) install; the schema refuses a malformed TrafficPolicy;
 * `kubectl get` columns; and `hexmesh control --kubernetes` reads HTTPRoutes and policies
 * into the store and writes their status conditions back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crdsYaml } from '../../src/control/kubernetes/crds.ts';
import { KubernetesSource } from '../../src/control/kubernetes/kubernetes-source.ts';
import { webhookConfiguration } from '../../src/control/kubernetes/injector.ts';
import { ControlPlane } from '../../src/control/control-plane.ts';
import { CertificateAuthority } from '../../src/identity/ca.ts';
import { runCli } from '../support/cli.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS } from '../../src/store/store.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';
import { until } from '../control/discovery-support.ts';

const root = new URL('../../', import.meta.url);
const file = (p: string) => new URL(p, root).pathname;
const skip = kubeApiserverMissingReason();

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

const policy = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'TrafficPolicy',
  metadata: { name, namespace: 'default' },
  spec,
});

const route = (name: string, backend: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace: 'default' },
  spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/v2' } }],
        backendRefs: [{ name: backend, port: 9080 }],
      },
    ],
  },
});

const TP = '/apis/hexmesh.io/v1alpha1/namespaces/default/trafficpolicies';
const HR = '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes';

it('deploy/kubernetes/crds/hexmesh.yaml is what scripts/gen-crds.ts generates', () => {
  assert.equal(
    readFileSync(file('deploy/kubernetes/crds/hexmesh.yaml'), 'utf8'),
    crdsYaml(),
    'stale: run node --import tsx scripts/gen-crds.ts',
  );
});

describe('kubernetes: CRDs, validation and status', { skip }, () => {
  let kube: KubeApiServer;
  let dir: string;
  let store: SqliteStore;
  let source: KubernetesSource;
  const logs: string[] = [];
  const cleanup: (() => Promise<void>)[] = [];

  before(async () => {
    kube = await KubeApiServer.start();
    dir = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-crd-'));
    store = await SqliteStore.open(join(dir, 'hexmesh.db'), { synchronous: 'normal' });
  });

  after(async () => {
    for (const c of cleanup) await c();
    await source?.close();
    await store?.close();
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the upstream Gateway API CRDs and hexmesh CRDs install and are established', async () => {
    const gw = [];
    for (const f of [
      'gateway.networking.k8s.io_httproutes.yaml',
      'gateway.networking.k8s.io_grpcroutes.yaml',
    ])
      gw.push(...(await kube.installCrds(file(`deploy/kubernetes/gateway-api/${f}`))));
    assert.deepEqual(gw, ['httproutes.gateway.networking.k8s.io', 'grpcroutes.gateway.networking.k8s.io']);
    const ours = await kube.installCrds(file('deploy/kubernetes/crds/hexmesh.yaml'));
    assert.deepEqual(ours, [
      'trafficpolicies.hexmesh.io',
      'authorizationpolicies.hexmesh.io',
      'peerauthentications.hexmesh.io',
      'requestauthentications.hexmesh.io',
      'rollouts.hexmesh.io',
    ]);
  });

  it('the schema refuses a malformed TrafficPolicy, naming the field', async () => {
    const bad = await kube.request(
      'POST',
      TP,
      policy('bad', { targetRef: { name: 'reviews' }, retries: { attempts: 99 } }),
    );
    assert.equal(bad.status, 422, bad.body);
    assert.match(bad.body, /spec\.retries\.attempts/);
    const badEnum = await kube.request(
      'POST',
      TP,
      policy('bad2', { targetRef: { name: 'reviews' }, loadBalancer: { type: 'fastest' } }),
    );
    assert.equal(badEnum.status, 422, badEnum.body);
    assert.match(badEnum.body, /spec\.loadBalancer\.type/);
    const noTarget = await kube.request('POST', TP, policy('bad3', { timeouts: { request: '2s' } }));
    assert.equal(noTarget.status, 422, noTarget.body);
    assert.match(noTarget.body, /spec\.targetRef/);
  });

  it('kubectl get trafficpolicies shows the target and Accepted columns', async () => {
    await kube.must(
      'POST',
      TP,
      policy('reviews-timeouts', { targetRef: { name: 'reviews' }, timeouts: { request: '2s' } }),
    );
    const r = await kube.request('GET', TP, undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    assert.equal(r.status, 200, r.body);
    const table = r.json() as { columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    assert.deepEqual(
      table.columnDefinitions.map((c) => c.name),
      ['Name', 'Target-Kind', 'Target', 'Accepted', 'Age'],
    );
    assert.deepEqual(table.rows[0].cells.slice(0, 3), ['reviews-timeouts', 'Service', 'reviews']);
  });

  it('the control plane mirrors a TrafficPolicy and marks it Accepted; one the schema cannot judge is refused in status', async () => {
    source = new KubernetesSource({
      store,
      kubeconfig: kube.kubeconfig,
      id: 'test',
      leaderTtlMs: 2000,
      log: (m) => logs.push(m),
    });
    await source.start();
    const kv = await until(
      async () =>
        (await store.get(KEYS.resource('TrafficPolicy', 'default', 'reviews-timeouts'))) ?? undefined,
      10_000,
      'policy mirrored',
    );
    const doc = JSON.parse(kv.value) as { spec: { timeouts: { request: string } } };
    assert.equal(doc.spec.timeouts.request, '2s');
    const accepted = await until(
      async () => {
        const p = await kube.must<{ status?: { conditions?: Condition[] } }>('GET', `${TP}/reviews-timeouts`);
        return p.status?.conditions?.find((c) => c.type === 'Accepted');
      },
      10_000,
      'Accepted condition',
    );
    assert.equal(accepted.status, 'True');
    // Valid OpenAPI, but ringHash needs hashOn (a refinement the CRD schema cannot state).
    await kube.must(
      'POST',
      TP,
      policy('reviews-hash', { targetRef: { name: 'reviews' }, loadBalancer: { type: 'ringHash' } }),
    );
    const refused = await until(
      async () => {
        const p = await kube.must<{ status?: { conditions?: Condition[] } }>('GET', `${TP}/reviews-hash`);
        return p.status?.conditions?.find((c) => c.type === 'Accepted');
      },
      10_000,
      'Accepted=False',
    );
    assert.equal(refused.status, 'False');
    assert.equal(refused.reason, 'Invalid');
    assert.match(refused.message, /hashOn/);
    assert.equal(await store.get(KEYS.resource('TrafficPolicy', 'default', 'reviews-hash')), undefined);
  });

  it('an HTTPRoute is read into the routes and gets Accepted/ResolvedRefs per Service parent', async () => {
    await kube.must('POST', '/api/v1/namespaces/default/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'reviews' },
      spec: { ports: [{ name: 'http', port: 9080 }] },
    });
    await kube.must('POST', HR, route('reviews-v2', 'reviews-v2'));
    const kv = await until(
      async () => (await store.get(KEYS.resource('HTTPRoute', 'default', 'reviews-v2'))) ?? undefined,
      10_000,
      'route mirrored',
    );
    const doc = JSON.parse(kv.value) as {
      spec: { parentRefs: { name: string }[]; rules: { backendRefs: { name: string }[] }[] };
    };
    assert.equal(doc.spec.parentRefs[0].name, 'reviews');
    assert.equal(doc.spec.rules[0].backendRefs[0].name, 'reviews-v2');
    type Parents = {
      status?: {
        parents?: { controllerName: string; parentRef: { name: string }; conditions: Condition[] }[];
      };
    };
    const parentConditions = async () => {
      const r = await kube.must<Parents>('GET', `${HR}/reviews-v2`);
      const p = r.status?.parents?.find((x) => x.controllerName === 'hexmesh.io/mesh');
      return p ? Object.fromEntries(p.conditions.map((c) => [c.type, c])) : undefined;
    };
    // The backend Service does not exist yet: accepted, but its refs do not resolve.
    let c = await until(parentConditions, 10_000, 'route status');
    assert.equal(c.Accepted.status, 'True');
    assert.equal(c.ResolvedRefs.status, 'False');
    assert.equal(c.ResolvedRefs.reason, 'BackendNotFound');
    await kube.must('POST', '/api/v1/namespaces/default/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'reviews-v2' },
      spec: { ports: [{ name: 'http', port: 9080 }] },
    });
    c = await until(
      async () => {
        const x = await parentConditions();
        return x?.ResolvedRefs.status === 'True' ? x : undefined;
      },
      10_000,
      'ResolvedRefs=True',
    );
    assert.equal(c.ResolvedRefs.reason, 'ResolvedRefs');
    assert.equal(c.Accepted.reason, 'Accepted');
  });

  it('deleting the route and the policy removes them from the store', async () => {
    await kube.must('DELETE', `${HR}/reviews-v2`);
    await kube.must('DELETE', `${TP}/reviews-timeouts`);
    await until(
      async () => ((await store.get(KEYS.resource('HTTPRoute', 'default', 'reviews-v2'))) ? undefined : true),
      10_000,
      'route gone',
    );
    await until(
      async () =>
        (await store.get(KEYS.resource('TrafficPolicy', 'default', 'reviews-timeouts'))) ? undefined : true,
      10_000,
      'policy gone',
    );
  });

  it('hexmesh check --kubernetes: CRDs established, then the webhook must trust the mesh CA', async () => {
    const cp = new ControlPlane({
      listen: { address: '127.0.0.1', port: 0 },
      store,
      identity: { dataDir: dir },
      dashboard: false,
    });
    const { port } = await cp.start();
    try {
      const check = async () => {
        const r = await runCli(
          [
            'check',
            '--kubernetes',
            '--kubeconfig',
            kube.kubeconfig,
            '--control',
            `http://127.0.0.1:${port}`,
            '-o',
            'json',
          ],
          60_000,
        );
        const all = JSON.parse(r.stdout) as { name: string; status: string; message: string }[];
        return Object.fromEntries(all.filter((x) => x.name.startsWith('kubernetes')).map((x) => [x.name, x]));
      };
      let c = await check();
      assert.equal(c['kubernetes-crds'].status, 'ok', c['kubernetes-crds'].message);
      assert.equal(c['kubernetes-webhook'].status, 'warn');
      assert.match(c['kubernetes-webhook'].message, /no MutatingWebhookConfiguration/);
      assert.equal(c['kubernetes-sidecars'].message, 'no injected Pods');
      // Registered with a bundle that is not the mesh CA's: the API server could not call it.
      const otherDir = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-otherca-'));
      const otherStore = await SqliteStore.open(join(otherDir, 'x.db'), { synchronous: 'normal' });
      cleanup.push(async () => {
        await otherStore.close();
        rmSync(otherDir, { recursive: true, force: true });
      });
      const otherCa = new CertificateAuthority(otherStore, { dataDir: otherDir });
      await otherCa.start();
      const other = await otherCa.bundle();
      const hooks = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
      await kube.must(
        'POST',
        hooks,
        webhookConfiguration({ caBundlePem: other.pem, url: 'https://127.0.0.1:1/inject' }),
      );
      c = await check();
      assert.equal(c['kubernetes-webhook'].status, 'fail');
      assert.match(c['kubernetes-webhook'].message, /does not hold the mesh CA's root/);
      await kube.must('DELETE', `${hooks}/hexmesh-injector`);
      await kube.must(
        'POST',
        hooks,
        webhookConfiguration({
          caBundlePem: (await cp.identity.bundle()).pem,
          url: 'https://127.0.0.1:1/inject',
        }),
      );
      c = await check();
      assert.equal(c['kubernetes-webhook'].status, 'ok', c['kubernetes-webhook'].message);
      assert.match(c['kubernetes-webhook'].message, /failurePolicy Ignore/);
    } finally {
      await cp.close();
    }
  });
});
