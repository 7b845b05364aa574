/**
 * Harness for the ported Gateway API GRPCRoute conformance tests (MESH-GRPC profile and the
 * Gateway profile's GRPCRoute tests on a Service parent): upstream's GrpcEcho servers as pods
 * echo-v1, echo-v2 and echo-v3 in `gateway-conformance-mesh` (Service `echo` selects v1 and v2,
 * port 7070), each behind its own real sidecar, and a grpc-js client calling through a client
 * sidecar's outbound listener with authority `echo:7070`.
 *
 * `expectGrpc` compares a call as upstream's `conformance/utils/grpc` does (status code, the
 * fully qualified method the server saw, namespace, pod name prefix), plus the request metadata
 * the backend saw where a test names it (upstream declares those but does not compare them).
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { parseProxyConfig } from '../../src/config/load.ts';
import { startProxy, type RunningProxy } from '../support/mesh.ts';
import { MESH_NS, eventually } from './mesh-harness.ts';

export const SERVICE = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';
export type GrpcPod = 'echo-v1' | 'echo-v2' | 'echo-v3';
export type EchoMethod = 'Echo' | 'EchoTwo' | 'EchoThree';

/** Upstream's EchoResponse (proto field names kept as they are on the wire). */
export interface EchoResponse {
  assertions: {
    fully_qualified_method: string;
    headers: { key: string; value: string }[];
    authority: string;
    context: { namespace: string; service_name: string; pod: string };
  };
}

/** One call's outcome: the status code and, for OK, what the server answered. */
export interface GrpcResult {
  code: grpc.status;
  response?: EchoResponse;
  /** Response metadata (for a trailers-only answer: its trailers, where x-hexmesh-error is). */
  metadata: grpc.Metadata;
}

type Unary = (
  req: object,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res: EchoResponse) => void,
) => grpc.ClientUnaryCall;
type EchoStub = grpc.Client & { echo: Unary; echoTwo: Unary; echoThree: Unary };

const def = protoLoader.loadSync(fileURLToPath(new URL('./grpcecho.proto', import.meta.url)), {
  keepCase: true,
});
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const GrpcEcho = (grpc.loadPackageDefinition(def) as any).gateway_api_conformance.echo_basic.grpcecho
  .GrpcEcho as grpc.ServiceClientConstructor;
const serialize = GrpcEcho.service.Echo.responseSerialize as (r: EchoResponse) => Buffer;

/**
 * Upstream's GrpcEcho server on node:http2, so that it answers the metadata lines as they
 * arrived (grpc-js's server hands over Node's joined header object, where two lines are one
 * `a, b`). Echo and EchoTwo answer what the server saw; anything else is UNIMPLEMENTED.
 */
async function grpcEchoServer(pod: string, log: EchoResponse[]): Promise<http2.Http2Server> {
  const server = http2.createServer();
  server.on('session', (session: http2.ServerHttp2Session) =>
    session.on(
      'stream',
      (stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, _f: number, raw: string[]) => {
        stream.on('error', () => {});
        stream.resume();
        stream.on('end', () => {
          const path = String(h[':path']);
          if (path !== `/${SERVICE}/Echo` && path !== `/${SERVICE}/EchoTwo`) {
            stream.respond(
              { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' },
              { endStream: true },
            );
            return;
          }
          const headers: EchoResponse['assertions']['headers'] = [];
          for (let i = 0; i < raw.length; i += 2)
            if (!raw[i].startsWith(':')) headers.push({ key: raw[i], value: raw[i + 1] });
          const res: EchoResponse = {
            assertions: {
              fully_qualified_method: path,
              headers,
              authority: String(h[':authority']),
              context: { namespace: MESH_NS, service_name: pod.slice(0, 7), pod },
            },
          };
          log.push(res);
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
  return server;
}

export interface GrpcMesh {
  /** Calls each pod's server answered, oldest first. */
  seen: Record<GrpcPod, EchoResponse[]>;
  /** Replace the client sidecar's routes (kubectl apply of one test's manifests). */
  apply(resources: unknown[]): void;
  /** Call `method` with `metadata` through the client sidecar. */
  call(method: EchoMethod, metadata?: Record<string, string>): Promise<GrpcResult>;
  close(): Promise<void>;
}

export async function startGrpcMesh(): Promise<GrpcMesh> {
  const closers: (() => Promise<unknown>)[] = [];
  const seen: GrpcMesh['seen'] = { 'echo-v1': [], 'echo-v2': [], 'echo-v3': [] };
  try {
    const inbound = {} as Record<GrpcPod, number>;
    for (const name of ['echo-v1', 'echo-v2', 'echo-v3'] as const) {
      const server = await grpcEchoServer(`${name}-7c9d5b6f4-x8k2p`, seen[name]);
      closers.push(() => new Promise<void>((r) => server.close(() => r())));
      const sidecar = await startProxy({
        proxy: {
          service: name,
          namespace: MESH_NS,
          app: { host: '127.0.0.1', port: (server.address() as AddressInfo).port, protocol: 'grpc' },
        },
      });
      closers.unshift(() => sidecar.close());
      inbound[name] = sidecar.inboundPort;
    }
    const ports = [{ name: 'grpc', port: 7070, protocol: 'grpc' }];
    const ep = (p: GrpcPod) => ({ address: '127.0.0.1', port: inbound[p] });
    const services = [
      { name: 'echo', endpoints: [ep('echo-v1'), ep('echo-v2')] },
      { name: 'echo-v1', endpoints: [ep('echo-v1')] },
      { name: 'echo-v2', endpoints: [ep('echo-v2')] },
      { name: 'echo-v3', endpoints: [ep('echo-v3')] },
    ].map((s) => ({ ...s, namespace: MESH_NS, ports }));
    const doc = (resources: unknown[], bound?: RunningProxy) => ({
      proxy: {
        service: 'echo-v1',
        namespace: MESH_NS,
        drainTimeout: '1s',
        // Once bound, the config keeps the addresses the listeners started with.
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
    const client = await startProxy(doc([]));
    closers.unshift(() => client.close());
    const stub = new GrpcEcho(`127.0.0.1:${client.addr.outbound.port}`, grpc.credentials.createInsecure(), {
      'grpc.default_authority': 'echo:7070',
    }) as unknown as EchoStub;
    closers.unshift(async () => stub.close());
    const stubMethod = { Echo: 'echo', EchoTwo: 'echoTwo', EchoThree: 'echoThree' } as const;
    return {
      seen,
      apply: (resources) => client.proxy.apply(parseProxyConfig(doc(resources, client))),
      call(method, metadata = {}) {
        const md = new grpc.Metadata();
        for (const [k, v] of Object.entries(metadata)) md.set(k, v);
        return new Promise((resolve) => {
          let headers = new grpc.Metadata();
          const call = stub[stubMethod[method]]({}, md, (err, res) =>
            resolve(
              err
                ? { code: err.code, metadata: err.metadata }
                : { code: grpc.status.OK, response: res, metadata: headers },
            ),
          );
          call.on('metadata', (m) => (headers = m));
        });
      },
      async close() {
        for (const fn of closers) await fn().catch(() => {});
      },
    };
  } catch (err) {
    for (const fn of closers) await fn().catch(() => {});
    throw err;
  }
}

/** A GRPCRoute attached to Service `echo` port 7070 (the Service parent stands for the Gateway). */
export function grpcRoute(name: string, rules: unknown[]): Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GRPCRoute',
    metadata: { name, namespace: MESH_NS },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 7070 }], rules },
  };
}

/** Upstream's `grpc.ExpectedResponse` (the parts these tests use). */
export interface GrpcExpected {
  method?: EchoMethod;
  metadata?: Record<string, string>;
  /** Default OK. */
  code?: grpc.status;
  backend?: string;
  namespace?: string;
  /** Request metadata the backend must have seen, repeated entries joined by `,`. */
  expectedHeaders?: Record<string, string>;
  absentHeaders?: string[];
  /** For a non-OK code: the mesh's own answer with this x-hexmesh-error (not the backend's). */
  meshError?: string;
  testCaseName?: string;
}

/** Metadata values for `key`, repeated entries joined by `,` (as upstream compares them). */
export function header(res: EchoResponse, key: string): string | undefined {
  const lower = key.toLowerCase();
  const v = res.assertions.headers.filter((h) => h.key.toLowerCase() === lower).map((h) => h.value);
  return v.length ? v.join(',') : undefined;
}

/** Upstream's compareResponse, plus the request metadata and the mesh error where named. */
export function grpcProblems(exp: GrpcExpected, got: GrpcResult): string[] {
  const want = exp.code ?? grpc.status.OK;
  if (got.code !== want) {
    const cause = got.metadata.get('x-hexmesh-error')[0];
    return [
      `code ${grpc.status[got.code]} (${got.code})${cause ? ` (x-hexmesh-error: ${String(cause)})` : ''}`,
    ];
  }
  if (want !== grpc.status.OK) {
    const cause = got.metadata.get('x-hexmesh-error')[0];
    return exp.meshError === undefined || cause === exp.meshError
      ? []
      : [`x-hexmesh-error ${JSON.stringify(cause)}, want ${exp.meshError}`];
  }
  const a = got.response!.assertions;
  const out: string[] = [];
  const fqm = `/${SERVICE}/${exp.method ?? 'Echo'}`;
  if (a.fully_qualified_method !== fqm) out.push(`server saw ${a.fully_qualified_method}, want ${fqm}`);
  if (exp.namespace && a.context.namespace !== exp.namespace)
    out.push(`namespace ${a.context.namespace}, want ${exp.namespace}`);
  if (!a.context.pod.startsWith(exp.backend ?? ''))
    out.push(`answered by ${a.context.pod}, want ${exp.backend}`);
  for (const [k, v] of Object.entries(exp.expectedHeaders ?? {})) {
    const actual = header(got.response!, k);
    if (actual !== v) out.push(`backend saw ${k}: ${JSON.stringify(actual)}, want ${JSON.stringify(v)}`);
  }
  for (const k of exp.absentHeaders ?? [])
    if (header(got.response!, k) !== undefined) out.push(`backend saw ${k}, want absent`);
  return out;
}

/** Upstream's MakeRequestAndExpectEventuallyConsistentResponse (mesh-harness.ts `eventually`). */
export function expectGrpc(
  mesh: GrpcMesh,
  exp: GrpcExpected,
  options?: { threshold?: number; timeoutMs?: number },
): Promise<void> {
  return eventually(
    grpcCaseName(exp, -1),
    async () => grpcProblems(exp, await mesh.call(exp.method ?? 'Echo', exp.metadata)),
    options,
  );
}

/** Upstream's GetTestCaseName: `<i> request to '/<service>/<Method>' with headers '{K:v}' should …`. */
export function grpcCaseName(exp: GrpcExpected, i: number): string {
  if (exp.testCaseName) return exp.testCaseName;
  const md = exp.metadata ?? {};
  const keys = Object.keys(md).sort();
  const headers = keys.length ? ` with headers '{${keys.map((k) => `${k}:${md[k]}`).join(',')}}'` : '';
  const req = `${i} request to '/${SERVICE}/${exp.method ?? 'Echo'}'${headers}`;
  if (exp.backend) return `${req} should go to ${exp.backend}`;
  const code = exp.code ?? grpc.status.OK;
  return `${req} should receive a ${goCodeName(code)} (${code})`;
}

/** Go's codes.Code String(): `Unimplemented`, `Unavailable`, … */
function goCodeName(code: grpc.status): string {
  return grpc.status[code]
    .toLowerCase()
    .replace(/(^|_)([a-z])/g, (_m, _u: string, c: string) => c.toUpperCase());
}

/**
 * Upstream's weighted-distribution check: 500 calls, 10 at a time, each backend within 5
 * percentage points of its weight and no other backend answering; up to 10 tries.
 */
export async function expectGrpcDistribution(mesh: GrpcMesh, weights: Partial<Record<GrpcPod, number>>) {
  let last = '';
  for (let attempt = 0; attempt < 10; attempt++) {
    const count: Record<string, number> = {};
    let next = 0;
    const worker = async () => {
      while (next < 500) {
        next++;
        const res = await mesh.call('Echo', { 'x-jitter': String(Math.floor(Math.random() * 10_000)) });
        assert.equal(res.code, grpc.status.OK, `expected OK response, got ${res.code}`);
        const pod = res.response!.assertions.context.pod;
        const who = (Object.keys(weights) as GrpcPod[]).find((b) => pod.startsWith(b));
        assert.ok(who, `request was handled by an unexpected pod ${pod}`);
        count[who] = (count[who] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    const problems: string[] = [];
    const receiving = Object.values(weights).filter((w) => w > 0).length;
    if (Object.keys(count).length !== receiving)
      problems.push(`expected only ${receiving} backends to receive traffic`);
    for (const [b, w] of Object.entries(weights)) {
      const got = (count[b] ?? 0) / 500;
      if (Math.abs(got - w) > 0.05) problems.push(`${b} ${got}, want ${w} ±0.05`);
    }
    if (problems.length === 0) return;
    last = problems.join('; ');
  }
  assert.fail(`Weighted distribution tests failed: ${last}`);
}
