/**
 * Routing end to end: an HTTPRoute / GRPCRoute attached to a Service (GAMMA, parentRefs kind
 * Service) on a client sidecar, separate backend services each with its own app + sidecar.
 * Each app answers with its name and what it saw, so the test can tell who got the request.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { request } from 'undici';
import {
  serviceEntry,
  startClient,
  startInstance,
  startSidecarFor,
  type Instance,
} from '../support/cluster.ts';

interface Seen {
  who: string;
  method: string;
  url: string;
  host: string;
  headers: http.IncomingHttpHeaders;
}

function echoApp(who: string, log?: Seen[]): http.RequestListener {
  return (req, res) => {
    const seen = { who, method: req.method!, url: req.url!, host: req.headers.host!, headers: req.headers };
    log?.push(seen);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(seen));
  };
}

const httpRoute = (name: string, parent: string, rules: unknown[]): Record<string, unknown> => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name },
  spec: { parentRefs: [{ kind: 'Service', name: parent }], rules },
});
const to = (name: string, weight?: number) => ({ name, ...(weight === undefined ? {} : { weight }) });

test('HTTPRoute on a Service: matches, split, filters, redirect, rewrite, mirror, no-route', async (t) => {
  const mirrored: Seen[] = [];
  const instances: Instance[] = [];
  t.after(async () => {
    await Promise.all(instances.map((i) => i.kill()));
  });
  const v1 = await startInstance('reviews-v1', echoApp('v1'));
  const v2 = await startInstance('reviews-v2', echoApp('v2'));
  const shadow = await startInstance('reviews-mirror', echoApp('mirror', mirrored));
  instances.push(v1, v2, shadow);
  const client = await startClient(
    [
      // The parent Service: its own endpoints are never used once a route is attached.
      serviceEntry('reviews', [v1]),
      serviceEntry('reviews-v1', [v1]),
      serviceEntry('reviews-v2', [v2]),
      serviceEntry('reviews-mirror', [shadow]),
    ],
    [
      httpRoute('reviews', 'reviews', [
        { matches: [{ path: { type: 'Exact', value: '/exact' } }], backendRefs: [to('reviews-v2')] },
        { matches: [{ headers: [{ name: 'x-version', value: 'v2' }] }], backendRefs: [to('reviews-v2')] },
        { matches: [{ method: 'DELETE' }], backendRefs: [to('reviews-v2')] },
        { matches: [{ queryParams: [{ name: 'ver', value: '2' }] }], backendRefs: [to('reviews-v2')] },
        {
          matches: [{ path: { value: '/split' } }],
          backendRefs: [to('reviews-v1', 80), to('reviews-v2', 20)],
        },
        {
          matches: [{ path: { value: '/hdrs' } }],
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: { set: [{ name: 'x-set', value: 'by-route' }], remove: ['x-drop'] },
            },
            {
              type: 'ResponseHeaderModifier',
              responseHeaderModifier: { add: [{ name: 'x-route', value: 'reviews' }] },
            },
          ],
          backendRefs: [to('reviews-v1')],
        },
        {
          matches: [{ path: { value: '/old' } }],
          filters: [
            {
              type: 'RequestRedirect',
              requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } },
            },
          ],
        },
        {
          matches: [{ path: { value: '/api/v1' } }],
          filters: [
            {
              type: 'URLRewrite',
              urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } },
            },
          ],
          backendRefs: [to('reviews-v1')],
        },
        {
          matches: [{ path: { value: '/mirror' } }],
          filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'reviews-mirror' } } }],
          backendRefs: [to('reviews-v1')],
        },
        { matches: [{ path: { value: '/v1' } }], backendRefs: [to('reviews-v1')] },
      ]),
    ],
  );
  t.after(() => client.close());

  const call = async (
    path: string,
    init: { method?: string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; headers: Record<string, unknown>; text: string; seen?: Seen }> => {
    const r = await request(`${client.outboundUrl}${path}`, {
      method: (init.method ?? 'GET') as 'GET',
      headers: { host: 'reviews', ...init.headers },
    });
    const text = await r.body.text();
    const json = r.headers['content-type'] === 'application/json';
    return {
      status: r.statusCode,
      headers: r.headers,
      text,
      seen: json ? (JSON.parse(text) as Seen) : undefined,
    };
  };

  // Matches pick the backend; without routing everything would go to `reviews` (= v1).
  assert.equal((await call('/exact')).seen?.who, 'v2', 'Exact path');
  assert.equal((await call('/exact/more')).status, 404, 'Exact does not match a longer path');
  assert.equal((await call('/anything', { headers: { 'x-version': 'v2' } })).seen?.who, 'v2', 'header');
  assert.equal((await call('/anything', { method: 'DELETE' })).seen?.who, 'v2', 'method');
  assert.equal((await call('/anything?ver=2')).seen?.who, 'v2', 'query param');
  assert.equal((await call('/v1/x')).seen?.who, 'v1', 'prefix');
  assert.equal((await call('/v1x')).status, 404, 'prefix matches whole path elements only');

  // No rule matches: 404 no-route (not the passthrough).
  const none = await call('/anything');
  assert.equal(none.status, 404);
  assert.equal(none.headers['x-hexmesh-error'], 'no-route');
  assert.match(none.text, /^no route .*reviews.*\n$/);

  // Weighted split 80/20 over a bounded number of requests.
  const n = 400;
  let toV1 = 0;
  for (let i = 0; i < n; i++) if ((await call(`/split/${i}`)).seen?.who === 'v1') toV1++;
  // Binomial(400, 0.8): sd = 8; ±40 is five standard deviations.
  assert.ok(Math.abs(toV1 - 0.8 * n) <= 40, `v1 got ${toV1} of ${n}`);

  // Header modifiers: the app sees the request headers changed, the client the response ones.
  const h = await call('/hdrs', { headers: { 'x-set': 'by-client', 'x-drop': 'me', 'x-keep': 'yes' } });
  assert.equal(h.seen?.headers['x-set'], 'by-route');
  assert.equal(h.seen?.headers['x-drop'], undefined);
  assert.equal(h.seen?.headers['x-keep'], 'yes');
  assert.equal(h.headers['x-route'], 'reviews');

  // Redirect: 302 with Location, the app is not called.
  const red = await call('/old/page?q=1');
  assert.equal(red.status, 302);
  assert.equal(red.headers.location, 'http://reviews/new/page?q=1');

  // URLRewrite ReplacePrefixMatch: the app sees the rewritten path.
  assert.equal((await call('/api/v1/books?x=1')).seen?.url, '/v2/books?x=1');

  // Mirror: the client sees only the primary's answer; the mirror gets a copy with a -shadow authority.
  const m = await call('/mirror/1', { headers: { 'x-trace': 'm1' } });
  assert.equal(m.seen?.who, 'v1');
  for (let i = 0; i < 100 && mirrored.length === 0; i++) await sleep(20);
  assert.equal(mirrored.length, 1, 'the mirror did not get a copy');
  assert.equal(mirrored[0].host, 'reviews-shadow');
  assert.equal(mirrored[0].url, '/mirror/1');
  assert.equal(mirrored[0].headers['x-trace'], 'm1');
});

test('GRPCRoute: a method match picks the backend for a grpc-js client', async (t) => {
  // Without GRPCRoute matching both calls would reach the same backend.
  const proto = protoLoader.loadSync(fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url)), {
    keepCase: false,
    longs: Number,
  });
  const pkg = grpc.loadPackageDefinition(proto) as unknown as {
    hexmesh: { test: { Echo: grpc.ServiceClientConstructor } };
  };
  const Echo = pkg.hexmesh.test.Echo;

  const startEcho = async (who: string): Promise<Awaited<ReturnType<typeof startSidecarFor>>> => {
    const server = new grpc.Server();
    server.addService(Echo.service, {
      unary: (call: grpc.ServerUnaryCall<{ message: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, { message: `${who}:${call.request.message}` }),
      serverStream: (call: grpc.ServerWritableStream<{ message: string }, unknown>) => {
        call.write({ message: `${who}:${call.request.message}` });
        call.end();
      },
      clientStream: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { message: who }),
      bidi: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    return startSidecarFor(
      `echo-${who}`,
      port,
      'grpc',
      () => new Promise((r) => server.tryShutdown(() => r())),
    );
  };
  const v1 = await startEcho('v1');
  const v2 = await startEcho('v2');
  const client = await startClient(
    [
      serviceEntry('echo', [v1], 'grpc'),
      serviceEntry('echo-v1', [v1], 'grpc'),
      serviceEntry('echo-v2', [v2], 'grpc'),
    ],
    [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'GRPCRoute',
        metadata: { name: 'echo' },
        spec: {
          parentRefs: [{ kind: 'Service', name: 'echo' }],
          rules: [
            {
              matches: [{ method: { service: 'hexmesh.test.Echo', method: 'Unary' } }],
              backendRefs: [{ name: 'echo-v2' }],
            },
            { matches: [{ method: { service: 'hexmesh.test.Echo' } }], backendRefs: [{ name: 'echo-v1' }] },
          ],
        },
      },
    ],
  );
  const stub = new Echo(client.outboundUrl.replace('http://', ''), grpc.credentials.createInsecure(), {
    'grpc.default_authority': 'echo',
  }) as unknown as grpc.Client & {
    unary(req: unknown, cb: (err: grpc.ServiceError | null, res: { message: string }) => void): void;
    serverStream(req: unknown): grpc.ClientReadableStream<{ message: string }>;
  };
  t.after(async () => {
    stub.close();
    await client.close();
    await Promise.all([v1.kill(), v2.kill()]);
  });

  const unary = await new Promise<{ message: string }>((resolve, reject) =>
    stub.unary({ message: 'hi' }, (err, res) => (err ? reject(err) : resolve(res))),
  );
  assert.equal(unary.message, 'v2:hi');
  const streamed: string[] = [];
  for await (const m of stub.serverStream({ message: 'yo' }) as AsyncIterable<{ message: string }>)
    streamed.push(m.message);
  assert.deepEqual(streamed, ['v1:yo']);
});
