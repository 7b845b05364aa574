/**
 * A Rollout's routing objects against a real kube-apiserver: the control plane writes Services
 * `<svc>-stable`, `<svc>-canary`, a blue/green preview Service named in the Rollout and an
 * HTTPRoute `<svc>-rollout`, by server-side apply with force. Whoever may create a Rollout
 * names them; an object of that name that is not the Rollout's own (a Service or route someone
 * else made) is not taken over: its selector, its owner and so its life stay as they were.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeApi } from '../../src/control/kubernetes/kube-api.ts';
import { KubeRolloutTraffic } from '../../src/control/kubernetes/kube-traffic.ts';
import { ROOT } from '../support/cli.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';

const skip = kubeApiserverMissingReason();
const NS = 'default';
const SVC = `/api/v1/namespaces/${NS}/services`;

interface ServiceOut {
  metadata: { ownerReferences?: { uid: string }[] };
  spec: { selector?: Record<string, string> };
}

describe('kubernetes: a Rollout does not take over objects that are not its own', { skip }, () => {
  let kube: KubeApiServer;
  let api: KubeApi;
  const owner = (uid: string) => ({ apiVersion: 'hexmesh.io/v1alpha1', kind: 'Rollout', name: 'web', uid });
  const service = (name: string, selector: Record<string, string>) =>
    kube.must('POST', SVC, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name },
      spec: { selector, ports: [{ name: 'http', port: 80 }] },
    });
  const state = (preview?: string) => ({
    stable: { 'pod-template-hash': 'aaa' },
    canary: { 'hexmesh.io/revision': '1' },
    weight: 10,
    ...(preview ? { preview: { name: preview, selector: { 'hexmesh.io/revision': '1' } } } : {}),
  });

  before(async () => {
    kube = await KubeApiServer.start();
    await kube.installCrds(
      join(ROOT, 'deploy/kubernetes/gateway-api/gateway.networking.k8s.io_httproutes.yaml'),
    );
    api = await KubeApi.load(kube.kubeconfig);
    await service('web', { app: 'web' });
  });

  after(async () => {
    await kube?.stop();
  });

  it('writes its own objects, and again on the next step', async () => {
    const traffic = new KubeRolloutTraffic(api, NS, 'web', owner('11111111-1111-1111-1111-111111111111'));
    await traffic.apply(state());
    await traffic.apply({ ...state(), weight: 50 });
    const canary = await kube.must<ServiceOut>('GET', `${SVC}/web-canary`);
    assert.deepEqual(canary.spec.selector, { app: 'web', 'hexmesh.io/revision': '1' });
    assert.equal(canary.metadata.ownerReferences?.[0].uid, '11111111-1111-1111-1111-111111111111');
  });

  it("a preview Service naming someone else's Service is refused; that Service is left as it was", async () => {
    await service('payments', { app: 'payments' });
    const traffic = new KubeRolloutTraffic(api, NS, 'web', owner('11111111-1111-1111-1111-111111111111'));
    await assert.rejects(traffic.apply(state('payments')), (e: Error) => {
      assert.match(e.message, /Service default\/payments exists and is not this Rollout's/);
      return true;
    });
    const victim = await kube.must<ServiceOut>('GET', `${SVC}/payments`);
    assert.deepEqual(victim.spec.selector, { app: 'payments' }, 'its traffic still goes to its pods');
    assert.equal(victim.metadata.ownerReferences, undefined, 'deleting the Rollout would not delete it');
  });

  it("another Rollout's objects, or a hand-made <svc>-stable, are not taken over either", async () => {
    const other = new KubeRolloutTraffic(api, NS, 'web', owner('22222222-2222-2222-2222-222222222222'));
    await assert.rejects(
      other.apply(state()),
      /Service default\/web-stable exists and is not this Rollout's/,
    );
    await service('shop', { app: 'shop' });
    await service('shop-stable', { app: 'shop', tier: 'stable' });
    const shop = new KubeRolloutTraffic(api, NS, 'shop', owner('33333333-3333-3333-3333-333333333333'));
    await assert.rejects(
      shop.apply(state()),
      /Service default\/shop-stable exists and is not this Rollout's/,
    );
    assert.deepEqual((await kube.must<ServiceOut>('GET', `${SVC}/shop-stable`)).spec.selector, {
      app: 'shop',
      tier: 'stable',
    });
  });

  it('a hand-made HTTPRoute <svc>-rollout is not taken over', async () => {
    await service('api', { app: 'api' });
    const ROUTES = `/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/httproutes`;
    const mine = {
      parentRefs: [{ group: '', kind: 'Service', name: 'api' }],
      rules: [{ backendRefs: [{ name: 'api', port: 80 }] }],
    };
    await kube.must('POST', ROUTES, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'api-rollout' },
      spec: mine,
    });
    const traffic = new KubeRolloutTraffic(api, NS, 'api', owner('44444444-4444-4444-4444-444444444444'));
    await assert.rejects(
      traffic.apply(state()),
      /HTTPRoute default\/api-rollout exists and is not this Rollout's/,
    );
    const route = await kube.must<{ metadata: { ownerReferences?: unknown[] }; spec: { rules: unknown } }>(
      'GET',
      `${ROUTES}/api-rollout`,
    );
    assert.deepEqual(route.spec.rules, [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' } }],
        backendRefs: [{ group: '', kind: 'Service', name: 'api', port: 80, weight: 1 }],
      },
    ]);
    assert.equal(route.metadata.ownerReferences, undefined);
  });
});
