/**
 * Gateway API conformance, MESH-GRPC profile, ported from kubernetes-sigs/gateway-api
 * `conformance/tests/mesh/grpcroute-*.go`: GRPCRoutes attached to Service `echo` port 7070,
 * echo-v1 / echo-v2 gRPC echo servers (upstream's GrpcEcho service) behind real sidecars, a
 * grpc-js client through a client sidecar's outbound listener with authority `echo:7070`
 * (grpc-harness.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expectGrpc, expectGrpcDistribution, grpcRoute, header, type GrpcExpected } from './grpc-harness.ts';
import { MESH_NS } from './mesh-harness.ts';
import { MODIFY_HEADERS, useGrpcMesh } from './suite.ts';

type PodName = 'echo-v1' | 'echo-v2';
const mesh = useGrpcMesh();

interface Expectation extends GrpcExpected {
  headers: Record<string, string>;
  backend: PodName;
}

/** Three consecutive calls as expected within 10 s (upstream's eventually-consistent request). */
const expectCall = (exp: Expectation) =>
  expectGrpc(mesh, { ...exp, metadata: exp.headers, namespace: MESH_NS });
const apply = (resources: unknown[]) => mesh.apply(resources);

describe('MESH-GRPC', () => {
  test('MeshGRPCRouteRequestHeaderModifier', async (t) => {
    const rule = (value: string, requestHeaderModifier: Record<string, unknown>, to: PodName) => ({
      matches: [{ headers: [{ name: 'x-test-case', value }] }],
      filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier }],
      backendRefs: [{ name: to, port: 7070 }],
    });
    apply([
      grpcRoute('grpc-request-header-modifier', [
        rule('set', { set: [{ name: 'x-header-set', value: 'set-overwrites-values' }] }, 'echo-v1'),
        rule('add', { add: [{ name: 'x-header-add', value: 'add-appends-values' }] }, 'echo-v1'),
        rule('remove', { remove: ['x-header-remove'] }, 'echo-v1'),
        rule(
          'multi',
          {
            set: [
              { name: 'x-header-set-1', value: 'header-set-1' },
              { name: 'x-header-set-2', value: 'header-set-2' },
            ],
            add: [
              { name: 'x-header-add-1', value: 'header-add-1' },
              { name: 'x-header-add-2', value: 'header-add-2' },
            ],
            remove: ['x-header-remove-1', 'x-header-remove-2'],
          },
          'echo-v2',
        ),
      ]),
    ]);
    const cases: (Expectation & { name: string })[] = [
      {
        name: 'Set headers -- overwrites existing header',
        headers: {
          'x-test-case': 'set',
          'some-other-header': 'this-header-should-be-set',
          'x-header-set': 'this-value-should-be-overwritten',
        },
        backend: 'echo-v1',
        expectedHeaders: {
          'x-test-case': 'set',
          'some-other-header': 'this-header-should-be-set',
          'x-header-set': 'set-overwrites-values',
        },
      },
      {
        name: 'Add headers -- appends to existing header',
        headers: { 'x-test-case': 'add', 'x-header-add': 'this-value-should-be-appended' },
        backend: 'echo-v1',
        expectedHeaders: {
          'x-test-case': 'add',
          'x-header-add': 'this-value-should-be-appended,add-appends-values',
        },
      },
      {
        name: 'Remove headers -- removes headers',
        headers: { 'x-test-case': 'remove', 'x-header-remove': 'this-should-be-removed' },
        backend: 'echo-v1',
        absentHeaders: ['x-header-remove'],
        expectedHeaders: { 'x-test-case': 'remove' },
      },
      {
        name: 'Multiple operations -- set, add, and remove headers',
        headers: {
          'x-test-case': 'multi',
          'x-header-set-2': 'set-header-2',
          'x-header-add-2': 'add-header-2',
          'x-header-remove-2': 'should-be-removed-2',
        },
        backend: 'echo-v2',
        absentHeaders: ['x-header-remove-1', 'x-header-remove-2'],
        expectedHeaders: {
          'x-test-case': 'multi',
          'x-header-set-1': 'header-set-1',
          'x-header-set-2': 'header-set-2',
          'x-header-add-1': 'header-add-1',
          'x-header-add-2': 'add-header-2,header-add-2',
        },
      },
    ];
    for (const c of cases) await t.test(c.name, () => expectCall(c));
  });

  test('MeshGRPCRouteRequestMirror', async (t) => {
    const mirror = { type: 'RequestMirror', requestMirror: { backendRef: { name: 'echo-v2', port: 7070 } } };
    apply([
      grpcRoute('mesh-grpc-request-mirror', [
        {
          matches: [{ headers: [{ name: 'x-mirror-only', value: 'true' }] }],
          filters: [mirror],
          backendRefs: [{ name: 'echo-v1', port: 7070 }],
        },
        {
          matches: [{ headers: [{ name: 'x-mirror-and-modify', value: 'true' }] }],
          filters: [MODIFY_HEADERS, mirror],
          backendRefs: [{ name: 'echo-v1', port: 7070 }],
        },
      ]),
    ]);
    const expectMirrored = async (marker: string, since: number) => {
      const deadline = Date.now() + 10_000;
      while (!mesh.seen['echo-v2'].slice(since).some((r) => header(r, marker) === 'true')) {
        if (Date.now() > deadline) assert.fail(`no mirrored call with ${marker} reached echo-v2`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await t.test('mirror only', async () => {
      const since = mesh.seen['echo-v2'].length;
      await expectCall({ headers: { 'x-mirror-only': 'true' }, backend: 'echo-v1' });
      await expectMirrored('x-mirror-only', since);
    });
    await t.test('mirror and modify headers', async () => {
      const since = mesh.seen['echo-v2'].length;
      await expectCall({
        headers: {
          'x-mirror-and-modify': 'true',
          'x-header-remove': 'remove-val',
          'x-header-add-append': 'append-val-1',
        },
        backend: 'echo-v1',
        expectedHeaders: {
          'x-header-add': 'header-val-1',
          'x-header-add-append': 'append-val-1,header-val-2',
          'x-header-set': 'set-overwrites-values',
        },
        absentHeaders: ['x-header-remove'],
      });
      await expectMirrored('x-mirror-and-modify', since);
    });
  });

  test('MeshGRPCRouteWeight', async (t) => {
    apply([
      grpcRoute('mesh-grpc-weighted-backends', [
        {
          backendRefs: [
            { name: 'echo-v1', port: 7070, weight: 70 },
            { name: 'echo-v2', port: 7070, weight: 30 },
            { name: 'echo-v3', port: 7070, weight: 0 },
          ],
        },
      ]),
    ]);
    await t.test('Requests should have a distribution that matches the weight', () =>
      expectGrpcDistribution(mesh, { 'echo-v1': 0.7, 'echo-v2': 0.3, 'echo-v3': 0 }),
    );
  });
});
