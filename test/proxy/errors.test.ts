/**
 * Every synthetic response from the outbound side says why: `x-hexmesh-error`, the status and
 * a one-line body for HTTP; `grpc-status` and `grpc-message` (and the same header in the
 * trailers-only response's metadata) for gRPC. One case per code the outbound side can
 * produce; each case fails if the proxy answered with anything else (e.g. a generic 500, a
 * hang, or the app's own answer).
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { request } from 'undici';
import { metricValue, policy, startClient, startInstance, startSidecarFor } from '../support/cluster.ts';
import type { RunningProxy } from '../support/mesh.ts';

/** A loopback port nobody listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * One client sidecar with a service per failure: `inbound` is the sidecar port of the app that
 * the services needing a live upstream share; `dead` a port with nothing listening.
 */
function errorClient(protocol: 'http' | 'grpc', inbound: number, dead: number): Promise<RunningProxy> {
  const ports = [{ port: 80, protocol }];
  const live = [{ address: '127.0.0.1', port: inbound }];
  const svc = (name: string, endpoints: unknown[]) => ({ name, ports, endpoints });
  const route =
    protocol === 'http'
      ? {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name: 'routed' },
          spec: {
            parentRefs: [{ kind: 'Service', name: 'routed' }],
            rules: [
              { matches: [{ path: { type: 'Exact', value: '/only' } }], backendRefs: [{ name: 'routed' }] },
            ],
          },
        }
      : {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'GRPCRoute',
          metadata: { name: 'routed' },
          spec: {
            parentRefs: [{ kind: 'Service', name: 'routed' }],
            rules: [
              { matches: [{ method: { service: 'other.Service' } }], backendRefs: [{ name: 'routed' }] },
            ],
          },
        };
  return startClient(
    [
      svc('empty', []),
      svc('sick', [{ address: '127.0.0.1', port: inbound, health: 'critical' }]),
      svc('dead', [{ address: '127.0.0.1', port: dead }]),
      svc('routed', live),
      svc('slow', live),
      svc('tripped', live),
      svc('narrow', live),
      svc('metered', live),
      svc('faulty', live),
    ],
    [
      route,
      // Panic mode would send to the critical endpoint anyway; 0 disables it.
      policy('sick', 'sick', { loadBalancer: { panicThreshold: 0 } }),
      policy('slow', 'slow', { timeouts: { request: '100ms' } }),
      policy('tripped', 'tripped', {
        circuitBreaker: { requestVolumeThreshold: 1, sleepWindow: '1m' },
        outlierDetection: { consecutive5xx: 0, consecutiveGatewayErrors: 0 },
      }),
      policy('narrow', 'narrow', { connectionPool: { maxRequests: 1, maxPendingRequests: 0 } }),
      policy('metered', 'metered', { rateLimit: { maxTokens: 1, fillInterval: '1m' } }),
      policy('faulty', 'faulty', { faults: { abort: { percent: 100, status: 503, grpcStatus: 9 } } }),
    ],
  );
}

test('HTTP: every synthetic response carries x-hexmesh-error, its status and a one-line body', async (t) => {
  // The app behaves by Host: slow answers late, tripped fails, narrow holds the request.
  const held: http.ServerResponse[] = [];
  const app = await startInstance('errapp', (req, res) => {
    const host = req.headers.host;
    if (host === 'slow') return void setTimeout(() => res.end('late'), 2000);
    if (host === 'tripped') {
      res.statusCode = 500;
      return void res.end('app failure');
    }
    if (host === 'narrow') return void held.push(res);
    res.end(`app ${host}`);
  });
  const dead = await deadPort();
  const client = await errorClient('http', app.sidecar.inboundPort, dead);
  t.after(async () => {
    for (const r of held) r.end();
    await client.close();
    await app.kill();
  });

  const call = async (host: string, path = '/') => {
    const r = await request(`${client.outboundUrl}${path}`, { headers: { host } });
    return { status: r.statusCode, error: r.headers['x-hexmesh-error'], body: await r.body.text() };
  };
  const cases: [string, string, number, string, string | RegExp][] = [
    [
      'nobody',
      '/',
      404,
      'unknown-service',
      'unknown service "nobody": not in the mesh configuration of client\n',
    ],
    ['routed', '/other', 404, 'no-route', 'no route of routed matches GET /other\n'],
    ['empty', '/', 503, 'no-healthy-endpoints', 'no endpoints for empty\n'],
    [
      'sick',
      '/',
      503,
      'no-healthy-endpoints',
      'no healthy endpoints for sick (1 known, all unhealthy or ejected)\n',
    ],
    ['dead', '/', 502, 'connect-failed', `connect refused by 127.0.0.1:${dead}\n`],
    ['slow', '/', 504, 'timeout', 'timeout after 100 ms calling slow\n'],
    ['faulty', '/', 503, 'fault-injected', 'fault injected: abort with status 503 calling faulty\n'],
  ];
  for (const [host, path, status, error, body] of cases) {
    const r = await call(host, path);
    assert.deepEqual(
      { host, status: r.status, error: r.error, oneLine: r.body.indexOf('\n') === r.body.length - 1 },
      { host, status, error, oneLine: true },
    );
    if (typeof body === 'string') assert.equal(r.body, body);
  }

  // The connect failure came after the default 2 retries (each to the only, dead, endpoint).
  assert.equal(await metricValue(client.adminUrl, 'hexmesh_retries_total', { dst_service: 'dead' }), 2);

  // Circuit open: the first 500 trips it (volume threshold 1); the next is refused.
  assert.equal((await call('tripped')).status, 500);
  assert.deepEqual(await call('tripped'), {
    status: 503,
    error: 'circuit-open',
    body: 'circuit open for tripped\n',
  });

  // Overloaded: one request held at the app fills the bulkhead.
  const first = request(`${client.outboundUrl}/`, { headers: { host: 'narrow' } });
  for (let i = 0; i < 100 && held.length === 0; i++) await sleep(20);
  assert.deepEqual(await call('narrow'), {
    status: 503,
    error: 'overloaded',
    body: 'too many requests to narrow (max 1 concurrent, 0 pending)\n',
  });
  held.shift()!.end('done');
  await (await first).body.text();

  // Rate limited: one token, then refused.
  assert.equal((await call('metered')).status, 200);
  assert.deepEqual(await call('metered'), {
    status: 429,
    error: 'rate-limited',
    body: 'rate limited: 1 requests per 1m for metered\n',
  });
});

test('gRPC: the same errors map to grpc-status and grpc-message', async (t) => {
  const proto = protoLoader.loadSync(fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url)), {
    longs: Number,
  });
  const Echo = (
    grpc.loadPackageDefinition(proto) as unknown as {
      hexmesh: { test: { Echo: grpc.ServiceClientConstructor } };
    }
  ).hexmesh.test.Echo;
  type Req = { message?: string; delayMs?: number; failCode?: number };
  const server = new grpc.Server();
  server.addService(Echo.service, {
    unary: (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const { message = '', delayMs = 0, failCode = 0 } = call.request;
      const answer = () =>
        failCode ? cb({ code: failCode, details: 'app failure' }) : cb(null, { message });
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    },
  });
  const appPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const app = await startSidecarFor(
    'errapp',
    appPort,
    'grpc',
    () => new Promise((r) => server.tryShutdown(() => r())),
  );
  const dead = await deadPort();
  const client = await errorClient('grpc', app.sidecar.inboundPort, dead);
  const target = client.outboundUrl.replace('http://', '');
  const stubs: grpc.Client[] = [];
  t.after(async () => {
    for (const s of stubs) s.close();
    await client.close();
    await app.kill();
  });

  type Unary = (req: Req, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
  const stubFor = (authority: string) => {
    const s = new Echo(target, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
    stubs.push(s);
    return s as unknown as { unary: Unary };
  };
  const stubsByHost = new Map<string, { unary: Unary }>();
  const call = (host: string, req: Req = { message: 'x' }) => {
    let s = stubsByHost.get(host);
    if (!s) stubsByHost.set(host, (s = stubFor(host)));
    return new Promise<{ code: number; details: string; error: unknown }>((resolve) =>
      s.unary(req, (err) =>
        resolve({
          code: err?.code ?? 0,
          details: err?.details ?? '',
          error: err?.metadata?.get('x-hexmesh-error')[0],
        }),
      ),
    );
  };

  const S = grpc.status;
  const cases: [string, Req, number, string, string][] = [
    [
      'nobody',
      {},
      S.UNIMPLEMENTED,
      'unknown-service',
      'unknown service "nobody": not in the mesh configuration of client',
    ],
    ['routed', {}, S.UNIMPLEMENTED, 'no-route', 'no route of routed matches POST /hexmesh.test.Echo/Unary'],
    ['empty', {}, S.UNAVAILABLE, 'no-healthy-endpoints', 'no endpoints for empty'],
    [
      'sick',
      {},
      S.UNAVAILABLE,
      'no-healthy-endpoints',
      'no healthy endpoints for sick (1 known, all unhealthy or ejected)',
    ],
    ['dead', {}, S.UNAVAILABLE, 'connect-failed', `connect refused by 127.0.0.1:${dead}`],
    ['slow', { delayMs: 2000 }, S.DEADLINE_EXCEEDED, 'timeout', 'timeout after 100 ms calling slow'],
    [
      'faulty',
      {},
      S.FAILED_PRECONDITION,
      'fault-injected',
      'fault injected: abort with grpc-status 9 calling faulty',
    ],
  ];
  for (const [host, req, code, error, details] of cases)
    assert.deepEqual({ host, ...(await call(host, req)) }, { host, code, details, error });

  // Circuit: an UNAVAILABLE answer from the app trips it; the next call is refused by the proxy.
  const failed = await call('tripped', { failCode: S.UNAVAILABLE });
  assert.deepEqual([failed.code, failed.error, failed.details], [S.UNAVAILABLE, undefined, 'app failure']);
  assert.deepEqual(await call('tripped'), {
    code: S.UNAVAILABLE,
    details: 'circuit open for tripped',
    error: 'circuit-open',
  });

  // Bulkhead: one slow call holds the only slot.
  const first = call('narrow', { delayMs: 1000 });
  await sleep(200);
  assert.deepEqual(await call('narrow'), {
    code: S.RESOURCE_EXHAUSTED,
    details: 'too many requests to narrow (max 1 concurrent, 0 pending)',
    error: 'overloaded',
  });
  assert.equal((await first).code, S.OK);

  assert.equal((await call('metered')).code, S.OK);
  assert.deepEqual(await call('metered'), {
    code: S.RESOURCE_EXHAUSTED,
    details: 'rate limited: 1 requests per 1m for metered',
    error: 'rate-limited',
  });
});
