/**
 * `hexmesh control --kubernetes` against a real kube-apiserver (test/support/kube-apiserver.ts):
 * Services and EndpointSlices written through the API reach a real sidecar's discovery —
 * endpoints, readiness, zones, app protocols — and leave it again when deleted.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlPlane } from '../../src/control/control-plane.ts';
import { KubernetesSource } from '../../src/control/kubernetes/kubernetes-source.ts';
import {
  startControlledProxy,
  type ControlledProxy,
} from '../../src/proxy/control-client/controlled-proxy.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS } from '../../src/store/store.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';
import { AppHost, netnsMissingReason } from '../support/netns.ts';
import { ROOT } from '../support/cli.ts';
import { spawnKubeControl } from '../support/kube-control.ts';
import { until } from '../control/discovery-support.ts';

/**
 * The API server refuses loopback endpoint addresses (as a kubelet would never report one),
 * so the apps run in a network namespace this test makes (test/support/netns.ts AppHost),
 * reached over a veth pair: traffic stays between this machine and that namespace.
 */
const skip = kubeApiserverMissingReason() ?? netnsMissingReason();
const any = { address: '127.0.0.1', port: 0 };

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    req.end();
  });
}

const service = (name: string, ports: Record<string, unknown>[]) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { ports },
});

const slice = (
  name: string,
  svc: string,
  port: number,
  endpoints: { address: string; ready?: boolean; zone?: string }[],
  portName = 'http',
) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: portName, port, protocol: 'TCP' }],
  endpoints: endpoints.map((e) => ({
    addresses: [e.address],
    conditions: { ready: e.ready ?? true },
    ...(e.zone ? { zone: e.zone } : {}),
  })),
});

describe('kubernetes: Services and EndpointSlices → the catalog → a sidecar', { skip }, () => {
  let kube: KubeApiServer;
  let dir: string;
  let store: SqliteStore;
  let cp: ControlPlane;
  let source: KubernetesSource;
  let sidecar: ControlledProxy;
  let app: { port: number; close(): Promise<void> };
  const logs: string[] = [];
  const extraApps: { port: number; close(): Promise<void> }[] = [];
  let appHost: AppHost;
  let hostIp: string;
  const hostApp = async (body: string) => {
    const a = await appHost.serve(body);
    extraApps.push(a);
    return a;
  };

  before(async () => {
    kube = await KubeApiServer.start();
    for (const f of ['httproutes', 'grpcroutes'])
      await kube.installCrds(join(ROOT, `deploy/kubernetes/gateway-api/gateway.networking.k8s.io_${f}.yaml`));
    dir = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-cat-'));
    store = await SqliteStore.open(join(dir, 'hexmesh.db'), { synchronous: 'normal' });
    cp = new ControlPlane({ listen: any, store, leaderTtlMs: 2000, dashboard: false });
    const a = await cp.start();
    source = new KubernetesSource({
      store,
      kubeconfig: kube.kubeconfig,
      id: 'test',
      leaderTtlMs: 2000,
      log: (m) => logs.push(m),
    });
    await source.start();
    appHost = AppHost.create('10.233.250');
    hostIp = appHost.ip;
    app = await appHost.serve('web app');
    sidecar = await startControlledProxy({
      control: [`http://127.0.0.1:${a.port}`],
      settings: { service: 'client', inbound: any, outbound: any, admin: any, drainTimeout: '1s' },
      client: { backoff: { initial: 50, max: 500 }, log: () => {} },
    });
    await sidecar.client.firstConfig;
  });

  after(async () => {
    await sidecar?.close();
    await source?.close();
    await cp?.destroy();
    await store?.close();
    await app?.close();
    for (const a of extraApps) await a.close();
    await kube?.stop();
    appHost?.destroySync();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a Service and its EndpointSlice reach the sidecar within a second, and it routes to them', async (t) => {
    await kube.must(
      'POST',
      '/api/v1/namespaces/default/services',
      service('web', [{ name: 'http', port: 80, targetPort: app.port }]),
    );
    await until(
      async () => (await store.get(KEYS.resource('Service', 'default', 'web'))) ?? undefined,
      10_000,
      'Service mirrored',
    );
    assert.equal(await sidecar.client.ensure('web.default'), true);
    const t0 = Date.now();
    await kube.must(
      'POST',
      '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices',
      slice('web-1', 'web', app.port, [{ address: hostIp, zone: 'zone-a' }]),
    );
    const endpoints = await until(
      () => {
        const svc = sidecar.proxy.config.services.find((s) => s.name === 'web');
        return svc?.endpoints.length ? svc.endpoints : undefined;
      },
      5000,
      'endpoint in the sidecar',
    );
    const ms = Date.now() - t0;
    t.diagnostic(`EndpointSlice created → endpoint in the sidecar: ${ms} ms`);
    assert.ok(ms < 1000, `EndpointSlice → sidecar took ${ms} ms`);
    assert.equal(endpoints[0].address, hostIp);
    assert.equal(endpoints[0].port, app.port);
    assert.equal(endpoints[0].labels?.['topology.kubernetes.io/zone'], 'zone-a');
    // The cluster IP the API server allocated is the service's virtual address: where
    // transparent capture finds the service a redirected connection was going to (issue 13).
    const created = await kube.must<{ spec: { clusterIPs: string[] } }>(
      'GET',
      '/api/v1/namespaces/default/services/web',
    );
    assert.ok(created.spec.clusterIPs?.length, 'the API server allocated a cluster IP');
    assert.deepEqual(
      sidecar.proxy.config.services.find((s) => s.name === 'web')?.addresses,
      created.spec.clusterIPs,
    );
    const res = await get(sidecar.addr.outbound.port, 'web');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'web app');
  });

  it('an endpoint that is not ready leaves the sidecar; a ready one comes back', async () => {
    const cur = await kube.must<{ metadata: { resourceVersion: string } }>(
      'GET',
      '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-1',
    );
    await kube.must('PUT', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-1', {
      ...slice('web-1', 'web', app.port, [{ address: hostIp, ready: false, zone: 'zone-a' }]),
      metadata: {
        ...slice('web-1', 'web', app.port, []).metadata,
        resourceVersion: cur.metadata.resourceVersion,
      },
    });
    await until(
      () =>
        sidecar.proxy.config.services.find((s) => s.name === 'web')?.endpoints.length === 0
          ? true
          : undefined,
      5000,
      'endpoint gone from the sidecar',
    );
    const stored = await store.range(`${KEYS.instances}default/web/`);
    assert.equal(stored.kvs.length, 1, 'kept in the catalog, as critical');
    assert.equal((JSON.parse(stored.kvs[0].value) as { status: string }).status, 'critical');
  });

  it('app protocols come from appProtocol or the port name', async () => {
    await kube.must(
      'POST',
      '/api/v1/namespaces/default/services',
      service('rpc', [
        { name: 'api', port: 9000, appProtocol: 'kubernetes.io/h2c' },
        { name: 'grpc-admin', port: 9001 },
        { name: 'metrics', port: 9090, appProtocol: 'tcp' },
      ]),
    );
    const kv = await until(
      async () => (await store.get(KEYS.resource('Service', 'default', 'rpc'))) ?? undefined,
      10_000,
      'rpc mirrored',
    );
    const doc = JSON.parse(kv.value) as {
      spec: { ports: { name: string; port: number; protocol: string }[] };
    };
    assert.deepEqual(
      doc.spec.ports.map((p) => [p.name, p.port, p.protocol]),
      [
        ['api', 9000, 'http2'],
        ['grpc-admin', 9001, 'grpc'],
        ['metrics', 9090, 'tcp'],
      ],
    );
  });

  it('an HTTPRoute created through the API steers the sidecar traffic (GAMMA: parentRef a Service)', async () => {
    const v1 = await hostApp('shop v1');
    const v2 = await hostApp('shop v2');
    for (const [name, a] of [
      ['shop', v1],
      ['shop-v2', v2],
    ] as const) {
      await kube.must(
        'POST',
        '/api/v1/namespaces/default/services',
        service(name, [{ name: 'http', port: 80 }]),
      );
      await kube.must(
        'POST',
        '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices',
        slice(`${name}-1`, name, a.port, [{ address: hostIp }]),
      );
    }
    const body = async () => (await get(sidecar.addr.outbound.port, 'shop')).body;
    await until(async () => ((await body()) === 'shop v1' ? true : undefined), 10_000, 'shop answers');
    await kube.must('POST', '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes', {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'shop-to-v2' },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'shop', port: 80 }],
        rules: [{ backendRefs: [{ name: 'shop-v2', port: 80 }] }],
      },
    });
    await until(async () => ((await body()) === 'shop v2' ? true : undefined), 10_000, 'route in force');
    for (let i = 0; i < 10; i++) assert.equal(await body(), 'shop v2');
    await kube.must('DELETE', '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/shop-to-v2');
    await until(async () => ((await body()) === 'shop v1' ? true : undefined), 10_000, 'route gone');
  });

  it('a multi-port Service: each port is its own upstream with its own protocol and endpoints (issue 13)', async () => {
    const web = await hostApp('multi web');
    const admin = await hostApp('multi admin');
    await kube.must(
      'POST',
      '/api/v1/namespaces/default/services',
      service('multi', [
        { name: 'http', port: 80 },
        { name: 'admin', port: 9000, appProtocol: 'http' },
      ]),
    );
    await kube.must('POST', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', {
      ...slice('multi-1', 'multi', web.port, [{ address: hostIp }]),
      ports: [
        { name: 'http', port: web.port, protocol: 'TCP' },
        { name: 'admin', port: admin.port, protocol: 'TCP' },
      ],
    });
    const perPort = await until(
      async () => (await store.get(KEYS.resource('Service', 'default', 'multi-admin'))) ?? undefined,
      10_000,
      'the admin port as its own Service',
    );
    const doc = JSON.parse(perPort.value) as {
      metadata: { labels: Record<string, string> };
      spec: { ports: { port: number; protocol: string }[]; addresses?: string[] };
    };
    assert.equal(doc.metadata.labels['hexmesh.io/port-of'], 'multi');
    assert.deepEqual(doc.spec.ports, [{ name: 'admin', port: 9000, targetPort: 9000, protocol: 'http' }]);
    const created = await kube.must<{ spec: { clusterIPs: string[] } }>(
      'GET',
      '/api/v1/namespaces/default/services/multi',
    );
    assert.deepEqual(doc.spec.addresses, created.spec.clusterIPs, 'shares the cluster IP');
    const instances = async (svc: string) =>
      (await store.range(`${KEYS.instances}default/${svc}/`)).kvs.map(
        (kv) => (JSON.parse(kv.value) as { port: number }).port,
      );
    await until(
      async () => ((await instances('multi-admin')).length ? true : undefined),
      10_000,
      'admin instances',
    );
    assert.deepEqual(await instances('multi'), [web.port]);
    assert.deepEqual(await instances('multi-admin'), [admin.port]);
    // Through the sidecar: each port reaches its own pods' port — by the per-port name, and by
    // the Service's own name with that port (the cluster IP says which Service owns it).
    assert.equal(await sidecar.client.ensure('multi.default'), true);
    assert.equal(await sidecar.client.ensure('multi-admin.default'), true);
    await until(
      async () =>
        (await get(sidecar.addr.outbound.port, 'multi:9000')).body === 'multi admin' ? true : undefined,
      10_000,
      'multi:9000 routed to the admin port',
    );
    assert.equal((await get(sidecar.addr.outbound.port, 'multi')).body, 'multi web');
    assert.equal((await get(sidecar.addr.outbound.port, 'multi:80')).body, 'multi web');
    assert.equal((await get(sidecar.addr.outbound.port, 'multi-admin')).body, 'multi admin');
    assert.equal(
      (await get(sidecar.addr.outbound.port, 'multi.default.svc.cluster.local:9000')).body,
      'multi admin',
    );
    // The port removed from the Service: its per-port Service and instances go.
    const cur = await kube.must<{ metadata: { resourceVersion: string }; spec: Record<string, unknown> }>(
      'GET',
      '/api/v1/namespaces/default/services/multi',
    );
    await kube.must('PUT', '/api/v1/namespaces/default/services/multi', {
      ...cur,
      spec: { ...cur.spec, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }] },
    });
    await until(
      async () => ((await store.get(KEYS.resource('Service', 'default', 'multi-admin'))) ? undefined : true),
      10_000,
      "the removed port's Service gone",
    );
    await until(
      async () => ((await instances('multi-admin')).length ? undefined : true),
      10_000,
      'its instances gone',
    );
  });

  it('hexmesh control --kubernetes (the real command) mirrors the cluster and serves it', async () => {
    const control = spawnKubeControl(kube.kubeconfig);
    try {
      const port = await control.line(/listening on http:\/\/127\.0\.0\.1:(\d+)/, 60_000, 'listening line');
      assert.match(control.out, new RegExp(`mirroring Kubernetes at ${kube.url.replace(/\./g, '\\.')}`));
      const doc = await until(
        async () => {
          const r = await fetch(`http://127.0.0.1:${port}/v1/resources/Service/default/rpc`);
          return r.status === 200
            ? ((await r.json()) as { spec: { ports: { protocol: string }[] } })
            : undefined;
        },
        10_000,
        'rpc served by the CLI control plane',
      );
      assert.equal(doc.spec.ports[0].protocol, 'http2');
      assert.equal(await control.stop(), 0, control.err);
    } finally {
      control.close();
    }
  });

  it('deleting the Service removes its resource and instances', async () => {
    await kube.must('DELETE', '/api/v1/namespaces/default/services/web');
    await until(
      async () => ((await store.get(KEYS.resource('Service', 'default', 'web'))) ? undefined : true),
      10_000,
      'Service gone',
    );
    await until(
      async () => ((await store.range(`${KEYS.instances}default/web/`)).kvs.length === 0 ? true : undefined),
      10_000,
      'instances gone',
    );
    assert.deepEqual(
      logs.filter((l) => !/retrying|watching again|the mirror/.test(l)),
      [],
      'nothing unexpected logged',
    );
  });
});
