/**
 * Gateway API conformance, MESH-GRPC profile, ported from kubernetes-sigs/gateway-api
 * `conformance/tests/mesh/grpcroute-*.go`: GRPCRoutes attached to Service `echo` port 7070,
 * echo-v1 / echo-v2 gRPC echo servers (upstream's GrpcEcho service) behind real sidecars, a
 * grpc-js client through a client sidecar's outbound listener with authority `echo:7070`.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { parseProxyConfig } from '../../src/config/load.ts';
import { startProxy, type RunningProxy } from '../support/mesh.ts';
import { MESH_NS } from './mesh-harness.ts';

interface EchoResponse {
  pod: string;
  namespace: string;
  authority: string;
  headers: { key: string; value: string }[];
}
type Unary = (
  req: object,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res: EchoResponse) => void,
) => grpc.ClientUnaryCall;
type EchoStub = grpc.Client & { echo: Unary; echoTwo: Unary };

const def = protoLoader.loadSync(fileURLToPath(new URL('./grpcecho.proto', import.meta.url)), {
  keepCase: true,
});
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const GrpcEcho = (grpc.loadPackageDefinition(def) as any).gateway_api_conformance.echo_basic.grpcecho
  .GrpcEcho as grpc.ServiceClientConstructor;

type PodName = 'echo-v1' | 'echo-v2';
const closers: (() => Promise<unknown>)[] = [];
let client: RunningProxy;
let stub: EchoStub;
const seen: Record<PodName, EchoResponse[]> = { 'echo-v1': [], 'echo-v2': [] };
let apply: (resources: unknown[]) => void;

/**
 * A unary gRPC server for GrpcEcho on node:http2, so that it can answer the metadata lines as
 * they arrived (grpc-js reads Node's joined header object, where two lines are one `a, b`).
 */
async function grpcEchoServer(name: PodName): Promise<number> {
  const pod = `${name}-7c9d5b6f4-x8k2p`;
  const serialize = GrpcEcho.service.Echo.responseSerialize as (r: EchoResponse) => Buffer;
  const server = http2.createServer();
  server.on('session', (session: http2.ServerHttp2Session) =>
    session.on(
      'stream',
      (stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, _f: number, raw: string[]) => {
        stream.on('error', () => {});
        stream.resume();
        stream.on('end', () => {
          const headers: EchoResponse['headers'] = [];
          for (let i = 0; i < raw.length; i += 2)
            if (!raw[i].startsWith(':')) headers.push({ key: raw[i], value: raw[i + 1] });
          const res = { pod, namespace: MESH_NS, authority: String(h[':authority']), headers };
          seen[name].push(res);
          const msg = serialize(res);
          const frame = Buffer.alloc(5 + msg.length);
          frame.writeUInt32BE(msg.length, 1);
          msg.copy(frame, 5);
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(frame);
        });
      },
    ),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

before(async () => {
  const pods = {} as Record<PodName, number>;
  for (const name of ['echo-v1', 'echo-v2'] as const) {
    const appPort = await grpcEchoServer(name);
    const sidecar = await startProxy({
      proxy: {
        service: name,
        namespace: MESH_NS,
        app: { host: '127.0.0.1', port: appPort, protocol: 'grpc' },
      },
    });
    closers.unshift(() => sidecar.close());
    pods[name] = sidecar.inboundPort;
  }
  const ports = [{ name: 'grpc', port: 7070, protocol: 'grpc' }];
  const ep = (p: PodName) => ({ address: '127.0.0.1', port: pods[p] });
  const services = [
    { name: 'echo', endpoints: [ep('echo-v1'), ep('echo-v2')] },
    { name: 'echo-v1', endpoints: [ep('echo-v1')] },
    { name: 'echo-v2', endpoints: [ep('echo-v2')] },
  ].map((s) => ({ ...s, namespace: MESH_NS, ports }));
  const doc = (resources: unknown[], bound?: RunningProxy) => ({
    proxy: {
      service: 'echo-v1',
      namespace: MESH_NS,
      drainTimeout: '1s',
      ...(bound
        ? {
            outbound: bound.proxy.config.proxy.outbound,
            inbound: bound.proxy.config.proxy.inbound,
            admin: bound.proxy.config.proxy.admin,
          }
        : {}),
    },
    services,
    resources,
  });
  client = await startProxy(doc([]));
  closers.unshift(() => client.close());
  apply = (resources) => client.proxy.apply(parseProxyConfig(doc(resources, client)));
  stub = new GrpcEcho(`127.0.0.1:${client.addr.outbound.port}`, grpc.credentials.createInsecure(), {
    'grpc.default_authority': 'echo:7070',
  }) as unknown as EchoStub;
  closers.unshift(async () => stub.close());
});
after(async () => {
  for (const fn of closers) await fn().catch(() => {});
});

const grpcRoute = (name: string, rules: unknown[]) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'GRPCRoute',
  metadata: { name, namespace: MESH_NS },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 7070 }], rules },
});
const SERVICE = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';

function call(headers: Record<string, string>, method: 'echo' | 'echoTwo' = 'echo'): Promise<EchoResponse> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve, reject) =>
    stub[method]({}, md, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

/** Metadata values for `key`, repeated entries joined by `,` (as upstream compares them). */
function header(res: EchoResponse, key: string): string | undefined {
  const v = res.headers.filter((h) => h.key === key.toLowerCase()).map((h) => h.value);
  return v.length ? v.join(',') : undefined;
}

interface Expectation {
  headers: Record<string, string>;
  backend: PodName;
  expectedHeaders?: Record<string, string>;
  absentHeaders?: string[];
}

function problems(exp: Expectation, res: EchoResponse): string[] {
  const out: string[] = [];
  if (!res.pod.startsWith(exp.backend)) out.push(`answered by ${res.pod}, want ${exp.backend}`);
  if (res.namespace !== MESH_NS) out.push(`namespace ${res.namespace}`);
  for (const [k, v] of Object.entries(exp.expectedHeaders ?? {}))
    if (header(res, k) !== v) out.push(`backend saw ${k}: ${JSON.stringify(header(res, k))}, want ${v}`);
  for (const k of exp.absentHeaders ?? []) if (header(res, k) !== undefined) out.push(`backend saw ${k}`);
  return out;
}

/** Three consecutive calls as expected within 10 s (upstream's eventually-consistent request). */
async function expectCall(exp: Expectation): Promise<void> {
  const deadline = Date.now() + 10_000;
  let ok = 0;
  while (ok < 3) {
    let last: string[];
    try {
      last = problems(exp, await call(exp.headers));
    } catch (err) {
      last = [`call failed: ${(err as Error).message}`];
    }
    ok = last.length === 0 ? ok + 1 : 0;
    if (ok < 3 && Date.now() > deadline) assert.fail(last.join('; '));
    if (last.length) await new Promise((r) => setTimeout(r, 50));
  }
}

describe('MESH-GRPC', () => {
  test('MeshGRPCRouteRequestHeaderModifier', async (t) => {
    const rule = (value: string, requestHeaderModifier: Record<string, unknown>, to: PodName) => ({
      matches: [{ method: { service: SERVICE, method: 'Echo' }, headers: [{ name: 'x-test-case', value }] }],
      filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier }],
      backendRefs: [{ name: to, port: 7070 }],
    });
    apply([
      grpcRoute('grpc-request-header-modifier', [
        rule('set', { set: [{ name: 'X-Header-Set', value: 'set-overwrites-values' }] }, 'echo-v1'),
        rule('add', { add: [{ name: 'X-Header-Add', value: 'add-appends-values' }] }, 'echo-v1'),
        rule('remove', { remove: ['X-Header-Remove'] }, 'echo-v1'),
        rule(
          'multi',
          {
            set: [
              { name: 'X-Header-Set-1', value: 'header-set-1' },
              { name: 'X-Header-Set-2', value: 'header-set-2' },
            ],
            add: [
              { name: 'X-Header-Add-1', value: 'header-add-1' },
              { name: 'X-Header-Add-2', value: 'header-add-2' },
            ],
            remove: ['X-Header-Remove-1', 'X-Header-Remove-2'],
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
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: {
                set: [{ name: 'X-Header-Set', value: 'set-overwrites-values' }],
                add: [
                  { name: 'X-Header-Add', value: 'header-val-1' },
                  { name: 'X-Header-Add-Append', value: 'header-val-2' },
                ],
                remove: ['X-Header-Remove'],
              },
            },
            mirror,
          ],
          backendRefs: [{ name: 'echo-v1', port: 7070 }],
        },
      ]),
    ]);
    const expectMirrored = async (marker: string, since: number) => {
      const deadline = Date.now() + 10_000;
      while (!seen['echo-v2'].slice(since).some((r) => header(r, marker) === 'true')) {
        if (Date.now() > deadline) assert.fail(`no mirrored call with ${marker} reached echo-v2`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await t.test('mirror only', async () => {
      const since = seen['echo-v2'].length;
      await expectCall({ headers: { 'x-mirror-only': 'true' }, backend: 'echo-v1' });
      await expectMirrored('x-mirror-only', since);
    });
    await t.test('mirror and modify headers', async () => {
      const since = seen['echo-v2'].length;
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
          ],
        },
      ]),
    ]);
    await t.test('Requests should have a distribution that matches the weight', async () => {
      // As upstream: 500 calls, 10 at a time, within 5 percentage points; up to 10 tries.
      let last = '';
      for (let attempt = 0; attempt < 10; attempt++) {
        const count: Record<string, number> = { 'echo-v1': 0, 'echo-v2': 0 };
        let next = 0;
        const worker = async () => {
          while (next < 500) {
            next++;
            const res = await call({ 'x-jitter': String(Math.floor(Math.random() * 10_000)) });
            count[res.pod.startsWith('echo-v1') ? 'echo-v1' : 'echo-v2']++;
          }
        };
        await Promise.all(Array.from({ length: 10 }, worker));
        const v1 = count['echo-v1'] / 500;
        const v2 = count['echo-v2'] / 500;
        if (Math.abs(v1 - 0.7) <= 0.05 && Math.abs(v2 - 0.3) <= 0.05) return;
        last = `echo-v1 ${v1}, echo-v2 ${v2}`;
      }
      assert.fail(`Weighted distribution tests failed: ${last}`);
    });
  });
});
