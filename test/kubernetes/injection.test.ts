/**
 * Sidecar injection through a real kube-apiserver: the mutating webhook (TLS from the mesh
 * CA) is registered with the API server, and Pods created through the API come back with the
 * proxy as a native sidecar — in a labelled namespace, or labelled themselves; never when
 * annotated out or already injected.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../src/identity/ca.ts';
import {
  InjectionWebhook,
  injectionPatch,
  webhookConfiguration,
  type Pod,
} from '../../src/control/kubernetes/injector.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { spawnKubeControl } from '../support/kube-control.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';

const skip = kubeApiserverMissingReason();
const OPTS = {
  image: 'hexmesh/proxy:test',
  control: ['https://hexmesh-control.hexmesh-system.svc:7070'],
  version: '0.1.0',
};

const pod = (
  name: string,
  extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, ...extra },
  spec: { containers: [{ name: 'app', image: 'shop/web:1', ports: [{ containerPort: 8080 }] }] },
});

interface PodOut {
  metadata: { annotations?: Record<string, string> };
  spec: {
    initContainers?: {
      name: string;
      image?: string;
      restartPolicy?: string;
      args: string[];
      securityContext?: { runAsUser?: number; capabilities?: { add?: string[] } };
    }[];
    containers: { name: string }[];
    serviceAccountName?: string;
    volumes?: { name: string; projected?: { sources: { serviceAccountToken?: { audience?: string } }[] } }[];
  };
}

describe('kubernetes: sidecar injection by a mutating webhook', { skip }, () => {
  let kube: KubeApiServer;
  let dir: string;
  let store: SqliteStore;
  let webhook: InjectionWebhook;

  before(async () => {
    kube = await KubeApiServer.start();
    dir = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-inj-'));
    store = await SqliteStore.open(join(dir, 'hexmesh.db'), { synchronous: 'normal' });
    const ca = new CertificateAuthority(store, { dataDir: dir, trustDomain: 'hexmesh.test' });
    await ca.start();
    const serving = await ca.issueServing({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    webhook = new InjectionWebhook({ certPem: serving.certChainPem, keyPem: serving.keyPem }, OPTS);
    const a = await webhook.listen(0, '127.0.0.1');
    await kube.must(
      'POST',
      '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
      webhookConfiguration({
        caBundlePem: (await ca.bundle()).pem,
        url: `https://127.0.0.1:${a.port}/inject`,
        failurePolicy: 'Fail',
      }),
    );
    for (const [ns, labels] of [
      ['meshed', { 'hexmesh.io/inject': 'enabled' }],
      ['plain', {}],
    ] as const)
      await kube.must('POST', '/api/v1/namespaces', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels },
      });
  });

  after(async () => {
    await webhook?.close();
    await store?.close();
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Create a Pod; the webhook configuration may take a moment to be in force. */
  const create = async (ns: string, body: unknown) =>
    kube.must<PodOut>('POST', `/api/v1/namespaces/${ns}/pods`, body);

  it('a Pod created in a labelled namespace comes back with the proxy as a native sidecar', async () => {
    // The API server loads webhook configurations from its informer: retry the first Pod.
    let out: PodOut | undefined;
    for (let i = 0; i < 100 && !out?.spec.initContainers; i++) {
      out = await create('meshed', pod(`web-${i}`, { labels: { app: 'web' } }));
      if (!out.spec.initContainers) await new Promise((r) => setTimeout(r, 100));
    }
    const sidecar = out!.spec.initContainers?.[0];
    assert.ok(sidecar, 'injected');
    assert.equal(sidecar.name, 'hexmesh-proxy');
    assert.equal(sidecar.restartPolicy, 'Always');
    const args = sidecar.args.join(' ');
    assert.match(args, /--service web /);
    assert.match(args, /--app-port 8080/);
    assert.match(args, /--control https:\/\/hexmesh-control\.hexmesh-system\.svc:7070/);
    assert.deepEqual(
      out!.spec.containers.map((c) => c.name),
      ['app'],
    );
    assert.equal(out!.metadata.annotations?.['hexmesh.io/injected'], '0.1.0');
    // The API server accepted the capture init container (root, NET_ADMIN) and the projected
    // ServiceAccount token the proxy reads (issue 13).
    const capture = out!.spec.initContainers?.[1];
    assert.equal(capture?.name, 'hexmesh-capture');
    assert.equal(capture?.args[0], 'capture');
    assert.deepEqual(capture?.securityContext?.capabilities?.add, ['NET_ADMIN', 'NET_RAW']);
    assert.match(args, /--capture/);
    assert.match(args, /--token-file \/var\/run\/secrets\/hexmesh\/token/);
    const token = out!.spec.volumes?.find((v) => v.name === 'hexmesh-token');
    assert.equal(token?.projected?.sources[0].serviceAccountToken?.audience, 'hexmesh');
  });

  it('a Pod in an unlabelled namespace is left alone unless it opts in with its label', async () => {
    const plain = await create('plain', pod('db'));
    assert.equal(plain.spec.initContainers, undefined);
    const optIn = await create('plain', pod('api', { labels: { 'hexmesh.io/inject': 'enabled' } }));
    assert.equal(optIn.spec.initContainers?.[0].name, 'hexmesh-proxy');
  });

  it('the opt-out annotation and label keep a Pod of a labelled namespace unmeshed', async () => {
    const out1 = await create('meshed', pod('batch', { annotations: { 'hexmesh.io/inject': 'false' } }));
    assert.equal(out1.spec.initContainers, undefined);
    const out2 = await create('meshed', pod('job', { labels: { 'hexmesh.io/inject': 'disabled' } }));
    assert.equal(out2.spec.initContainers, undefined);
  });

  it('the young-generation annotation reaches the proxy, and a bad value refuses the Pod with why', async () => {
    const small = await create(
      'meshed',
      pod('lean', { annotations: { 'hexmesh.io/proxy-semi-space-mib': '1' } }),
    );
    const env = (small.spec.initContainers?.[0] as { env?: { name: string; value?: string }[] }).env;
    assert.deepEqual(
      env?.filter((e) => e.name === 'NODE_OPTIONS'),
      [{ name: 'NODE_OPTIONS', value: '--max-semi-space-size=1' }],
    );
    const bad = await kube.request(
      'POST',
      '/api/v1/namespaces/meshed/pods',
      pod('greedy', { annotations: { 'hexmesh.io/proxy-semi-space-mib': '64' } }),
    );
    assert.equal(bad.status, 400, bad.body);
    assert.match(
      bad.body,
      /hexmesh injector: annotation hexmesh\.io\/proxy-semi-space-mib: expected a whole number of MiB from 1 to 16, got \\"64\\"/,
    );
    const missing = await kube.request('GET', '/api/v1/namespaces/meshed/pods/greedy');
    assert.equal(missing.status, 404, 'the refused Pod was not created');
  });

  it('injection is idempotent: a Pod that already has the proxy keeps exactly one', async () => {
    const once = await create('meshed', pod('twice', { labels: { app: 'twice' } }));
    assert.equal(injectionPatch(once as Pod, OPTS).length, 0, 'a second pass patches nothing');
    // Created again from the injected spec (what a controller re-applying it would send).
    const again = await create('meshed', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'twice-2', labels: { app: 'twice' } },
      spec: {
        initContainers: once.spec.initContainers,
        volumes: once.spec.volumes,
        serviceAccountName: once.spec.serviceAccountName,
        containers: [pod('x').spec.containers[0]],
      },
    });
    assert.equal(again.spec.initContainers?.filter((c) => c.name === 'hexmesh-proxy').length, 1);
  });

  it('hexmesh control --kubernetes --inject-listen serves the webhook with a mesh-CA certificate', async () => {
    // Only this webhook from here on: the in-process one is unregistered.
    await kube.must(
      'DELETE',
      '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hexmesh-injector',
    );
    const control = spawnKubeControl(kube.kubeconfig, [
      '--inject-listen',
      '127.0.0.1:0',
      '--proxy-image',
      'hexmesh/proxy:cli',
    ]);
    try {
      const hook = await control.line(/injection webhook on (https:\/\/\S+)/, 60_000, 'webhook line');
      const api = await control.line(/listening on (http:\/\/\S+)/, 10_000, 'listening line');
      const bundlePem = await (await fetch(`${api}/v1/identity/bundle`)).text();
      await kube.must(
        'POST',
        '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
        webhookConfiguration({
          name: 'hexmesh-injector-cli',
          caBundlePem: bundlePem,
          url: hook,
          failurePolicy: 'Fail',
        }),
      );
      let got: PodOut | undefined;
      for (let i = 0; i < 100 && got?.spec.initContainers?.[0]?.image !== 'hexmesh/proxy:cli'; i++) {
        got = await create('meshed', pod(`cli-${i}`, { labels: { app: 'cli' } }));
        if (got.spec.initContainers?.[0]?.image !== 'hexmesh/proxy:cli')
          await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(got?.spec.initContainers?.[0]?.image, 'hexmesh/proxy:cli');
      assert.equal(got?.metadata.annotations?.['hexmesh.io/injected'], 'hexmesh/proxy:cli');
      assert.equal(await control.stop(), 0, control.err);
    } finally {
      control.close();
    }
  });
});
