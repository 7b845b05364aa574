/**
 * The mirror across a restart, against a real kube-apiserver: a control plane that takes over
 * a store it (or another replica) wrote before must not act on caches it has not filled yet —
 * deleting a Service or an endpoint Kubernetes still has, even for a moment, sends every
 * sidecar of it `unknown-service` — and must converge on what changed while none ran: deleted
 * Services and endpoints go, new ones come, none is kept forever. A real `hexmesh control`
 * killed (SIGKILL) in the middle of a burst of Service and EndpointSlice writes converges the
 * same way when started again on its data directory.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubernetesSource } from '../../src/control/kubernetes/kubernetes-source.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS, type WatchEvent } from '../../src/store/store.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';
import { spawnKubeControl } from '../support/kube-control.ts';
import { until } from '../control/discovery-support.ts';
import { ROOT } from '../support/cli.ts';

const skip = kubeApiserverMissingReason();

const service = (ns: string, name: string) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: ns },
  spec: { ports: [{ name: 'http', port: 80 }] },
});

const slice = (ns: string, svc: string, addresses: string[]) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${svc}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
});

describe('kubernetes: the mirror after a restart or a crash', { skip }, () => {
  let kube: KubeApiServer;
  const dirs: string[] = [];

  before(async () => {
    kube = await KubeApiServer.start();
    await kube.installCrds(join(ROOT, 'deploy/kubernetes/crds/hexmesh.yaml'));
  });

  after(async () => {
    await kube?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const mkdir = (p: string) => {
    const d = mkdtempSync(join(tmpdir(), p));
    dirs.push(d);
    return d;
  };

  /**
   * A kubeconfig for ServiceAccount default/mirror, which may read what the mirror reads but
   * EndpointSlices (`grantSlices` adds them): a list that does not come in, as a slow or
   * failing one of a large cluster.
   */
  const limitedKubeconfig = async () => {
    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    await kube.must('POST', '/api/v1/namespaces/default/serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'mirror' },
    });
    await kube.must('POST', `${rbac}/clusterroles`, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'mirror' },
      rules: [
        { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['*'] },
        { apiGroups: ['gateway.networking.k8s.io'], resources: ['*'], verbs: ['*'] },
        // Not authorizationpolicies (granted with the slices): a policy must not lapse either.
        {
          apiGroups: ['hexmesh.io'],
          resources: [
            'trafficpolicies',
            'trafficpolicies/status',
            'peerauthentications',
            'requestauthentications',
            'rollouts',
          ],
          verbs: ['*'],
        },
      ],
    });
    await kube.must('POST', `${rbac}/clusterrolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'mirror' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'mirror' },
      subjects: [{ kind: 'ServiceAccount', name: 'mirror', namespace: 'default' }],
    });
    const token = (
      await kube.must<{ status: { token: string } }>(
        'POST',
        '/api/v1/namespaces/default/serviceaccounts/mirror/token',
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
      )
    ).status.token;
    const file = join(mkdir('hexmesh-k8s-kubeconfig-'), 'kubeconfig');
    writeFileSync(file, readFileSync(kube.kubeconfig, 'utf8').replace(kube.token, token), { mode: 0o600 });
    return file;
  };
  const grantSlices = () =>
    kube
      .must('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'mirror-slices', labels: {} },
        rules: [
          { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
          {
            apiGroups: ['hexmesh.io'],
            resources: ['authorizationpolicies', 'authorizationpolicies/status'],
            verbs: ['*'],
          },
        ],
      })
      .then(() =>
        kube.must('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: 'mirror-slices' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'mirror-slices' },
          subjects: [{ kind: 'ServiceAccount', name: 'mirror', namespace: 'default' }],
        }),
      );

  const namespace = (name: string) =>
    kube.must('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });

  /** The mirrored Services and endpoint addresses of `ns` in a store: `svc=addr,addr`. */
  const mirrored = async (store: SqliteStore, ns: string): Promise<string[]> => {
    const out = new Map<string, string[]>();
    for (const kv of (await store.range(`${KEYS.resources}Service/${ns}/`)).kvs)
      out.set(kv.key.slice(kv.key.lastIndexOf('/') + 1), []);
    for (const kv of (await store.range(`${KEYS.instances}${ns}/`)).kvs) {
      const i = JSON.parse(kv.value) as { service: string; address: string };
      const list = out.get(i.service);
      if (list) list.push(i.address);
      else out.set(`!orphan ${i.service}`, [i.address]);
    }
    return [...out].map(([s, a]) => `${s}=${a.sort().join(',')}`).sort();
  };

  it('a replica taking over deletes nothing Kubernetes has before its caches are filled, and catches up', async () => {
    await namespace('takeover');
    const N = 40;
    const want = new Map<string, string[]>();
    for (let i = 0; i < N; i++) {
      const name = `svc-${i}`;
      const addrs = [`10.20.${i}.1`, `10.20.${i}.2`];
      await kube.must('POST', '/api/v1/namespaces/takeover/services', service('takeover', name));
      await kube.must(
        'POST',
        '/apis/discovery.k8s.io/v1/namespaces/takeover/endpointslices',
        slice('takeover', name, addrs),
      );
      want.set(name, addrs);
    }
    const expected = () => [...want].map(([s, a]) => `${s}=${[...a].sort().join(',')}`).sort();
    await kube.must('POST', '/apis/hexmesh.io/v1alpha1/namespaces/takeover/authorizationpolicies', {
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'no-admin', namespace: 'takeover' },
      spec: {
        targetRef: { kind: 'Service', name: 'svc-2' },
        action: 'DENY',
        rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }],
      },
    });
    const policyKey = KEYS.resource('AuthorizationPolicy', 'takeover', 'no-admin');
    const store = await SqliteStore.open(join(mkdir('hexmesh-k8s-restart-'), 'hexmesh.db'), {
      synchronous: 'normal',
    });
    const lease = { namespace: 'default', name: 'takeover' };
    const first = new KubernetesSource({ store, kubeconfig: kube.kubeconfig, id: 'first', lease });
    await first.start();
    await until(
      async () => ((await mirrored(store, 'takeover')).join(' ') === expected().join(' ') ? true : undefined),
      30_000,
      'the first replica mirrored every Service',
    );
    await until(async () => (await store.get(policyKey)) ?? undefined, 10_000, 'the policy mirrored');
    // A rolling restart: the first replica stops and hands the Lease over at once. Meanwhile,
    // Kubernetes changes: a Service goes, another loses an endpoint, a new one comes.
    await first.close();
    await kube.must('DELETE', '/api/v1/namespaces/takeover/services/svc-0');
    await kube.must('DELETE', '/apis/discovery.k8s.io/v1/namespaces/takeover/endpointslices/svc-0-1');
    want.delete('svc-0');
    const path = '/apis/discovery.k8s.io/v1/namespaces/takeover/endpointslices/svc-1-1';
    const cur = await kube.must<{ metadata: { resourceVersion: string } }>('GET', path);
    const shrunk = slice('takeover', 'svc-1', ['10.20.1.1']);
    await kube.must('PUT', path, {
      ...shrunk,
      metadata: { ...shrunk.metadata, resourceVersion: cur.metadata.resourceVersion },
    });
    want.set('svc-1', ['10.20.1.1']);
    await kube.must('POST', '/api/v1/namespaces/takeover/services', service('takeover', 'svc-new'));
    await kube.must(
      'POST',
      '/apis/discovery.k8s.io/v1/namespaces/takeover/endpointslices',
      slice('takeover', 'svc-new', ['10.20.99.1']),
    );
    want.set('svc-new', ['10.20.99.1']);

    // Every delete the second replica makes, from its start on.
    const deletes: string[] = [];
    const watcher = store.watch('/hexmesh/', {
      onEvents: (events: readonly WatchEvent[]) => {
        for (const e of events) if (e.type === 'delete') deletes.push(e.kv.key);
      },
    });
    const logs: string[] = [];
    const second = new KubernetesSource({
      store,
      kubeconfig: await limitedKubeconfig(),
      id: 'second',
      lease,
      log: (m) => logs.push(m),
    });
    try {
      await second.start();
      assert.equal(second.isLeader, true, 'the Lease was handed over');
      await until(
        () =>
          (logs.some((l) => /endpointslices: .*forbidden/.test(l)) &&
            logs.some((l) => /authorizationpolicies: .*forbidden/.test(l))) ||
          undefined,
        10_000,
        'the EndpointSlice and AuthorizationPolicy lists refused',
      );
      // The mirror is at work (a policy created now is mirrored), its EndpointSlices not listed:
      // every Service and endpoint of the store must still be there.
      await kube.must('POST', '/apis/hexmesh.io/v1alpha1/namespaces/takeover/trafficpolicies', {
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'probe', namespace: 'takeover' },
        spec: { targetRef: { name: 'svc-2' }, timeouts: { request: '2s' } },
      });
      await until(
        async () => (await store.get(KEYS.resource('TrafficPolicy', 'takeover', 'probe'))) ?? undefined,
        10_000,
        'the policy mirrored',
      );
      assert.equal(
        deletes.length,
        0,
        `deleted while the EndpointSlices were not listed: ${deletes.join(' ')}`,
      );
      await grantSlices();
      await until(
        async () =>
          (await mirrored(store, 'takeover')).join(' ') === expected().join(' ') ? true : undefined,
        30_000,
        'the second replica caught up',
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}: ${(await mirrored(store, 'takeover')).join(' ')}`);
      });
      assert.ok(await store.get(policyKey), 'the AuthorizationPolicy is kept');
      // What went while no replica ran, and only that, is deleted.
      const wrong = deletes.filter(
        (k) =>
          k !== KEYS.resource('Service', 'takeover', 'svc-0') &&
          !k.startsWith(KEYS.instance('takeover', 'svc-0', '')) &&
          k !== KEYS.instance('takeover', 'svc-1', '10.20.1.2-8080'),
      );
      assert.deepEqual(wrong, [], `deleted what Kubernetes still had (${deletes.length} deletes in all)`);
    } finally {
      watcher.close();
      await second.close();
      await store.close();
    }
  });

  it('a hexmesh control SIGKILLed in a burst of Service and EndpointSlice writes converges when started again', async () => {
    await namespace('burst');
    const data = mkdir('hexmesh-k8s-burst-');
    const args = ['--data-dir', data, '--leader-ttl', '2s'];
    const want = new Map<string, string[]>();
    const create = async (i: number) => {
      const name = `b-${i}`;
      const addrs = [`10.30.${i}.1`, `10.30.${i}.2`];
      await kube.must('POST', '/api/v1/namespaces/burst/services', service('burst', name));
      await kube.must(
        'POST',
        '/apis/discovery.k8s.io/v1/namespaces/burst/endpointslices',
        slice('burst', name, addrs),
      );
      want.set(name, addrs);
    };
    const first = spawnKubeControl(kube.kubeconfig, args);
    let api: string;
    try {
      await first.line(/(mirroring Kubernetes)/, 60_000, 'mirroring line');
      api = await first.line(/listening on (http:\/\/\S+)/, 10_000, 'listening line');
      for (let i = 0; i < 15; i++) await create(i);
      // Killed while it is translating: at least one of the burst is in, not necessarily all.
      await until(
        async () => {
          const r = await fetch(`${api}/v1/catalog/service/burst/b-0`);
          return r.ok && ((await r.json()) as unknown[]).length > 0 ? true : undefined;
        },
        20_000,
        'the burst reached the store',
      );
    } finally {
      first.close(); // SIGKILL
    }
    // While it is down: more of the burst, and some of it gone again.
    for (let i = 15; i < 25; i++) await create(i);
    for (const i of [1, 3, 16]) {
      await kube.must('DELETE', `/api/v1/namespaces/burst/services/b-${i}`);
      await kube.must('DELETE', `/apis/discovery.k8s.io/v1/namespaces/burst/endpointslices/b-${i}-1`);
      want.delete(`b-${i}`);
    }
    // Its data directory again, once the killed process is gone (its port no longer answers).
    await until(
      () =>
        fetch(`${api}/v1/catalog/services`).then(
          () => undefined,
          () => true,
        ),
      10_000,
      'the killed control plane gone',
    );
    const second = spawnKubeControl(kube.kubeconfig, args);
    try {
      const api2 = await second.line(/listening on (http:\/\/\S+)/, 60_000, 'listening line');
      const state = async () => {
        const out: string[] = [];
        for (let i = 0; i < 25; i++) {
          const r = await fetch(`${api2}/v1/catalog/service/burst/b-${i}`);
          const list = r.ok ? ((await r.json()) as { address: string }[]) : [];
          out.push(
            `b-${i}=${list
              .map((x) => x.address)
              .sort()
              .join(',')}`,
          );
        }
        return out.join(' ');
      };
      const expected = Array.from(
        { length: 25 },
        (_, i) => `b-${i}=${(want.get(`b-${i}`) ?? []).join(',')}`,
      ).join(' ');
      let last = '';
      await until(
        async () => ((last = await state()) === expected ? true : undefined),
        30_000,
        'converged after the restart',
      ).catch((e: Error) => {
        throw new Error(`${e.message}: have ${last}; want ${expected}; stderr: ${second.err.slice(-2000)}`);
      });
      assert.equal(await second.stop(), 0, second.err);
    } finally {
      second.close();
    }
  });
});
