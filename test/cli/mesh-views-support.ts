/**
 * Test support for tap/top/check/diagnose: a real control plane (discovery on) and
 * sidecars steered by it: client → ratings (two instances), each app a real HTTP server.
 */
import http from 'node:http';
import { KEYS } from '../../src/store/store.ts';
import {
  startControlledProxy,
  type ControlledProxy,
} from '../../src/proxy/control-client/controlled-proxy.ts';
import { startCp, type TestCp } from '../control/helpers.ts';
import { startHttpServer } from '../support/mesh.ts';

export interface ViewsMesh {
  cp: TestCp;
  /** With `{ auth: true }`: an operator API token (tap needs the `tap` permission). */
  operatorToken?: string;
  client: ControlledProxy;
  ratings: ControlledProxy[];
  /** One request through the client's sidecar to ratings. */
  call(path: string, headers?: Record<string, string>): Promise<number>;
  /** `n` requests, 4 at a time. */
  load(n: number, path?: (i: number) => string): Promise<void>;
  /** Make the client's sidecar reject its next config (a resource its schema refuses). */
  poison(): Promise<void>;
  close(): Promise<void>;
}

const any = { address: '127.0.0.1', port: 0 };

/**
 * `auth: true` enforces API auth as `hexmesh control` does by default: each sidecar joins with
 * a join token for its own service, and the CLI needs a token.
 */
export async function startViewsMesh(opts: { auth?: boolean } = {}): Promise<ViewsMesh> {
  const closers: (() => Promise<unknown>)[] = [];
  const cp = await startCp(
    opts.auth ? { discovery: true, auth: { mode: 'enforce' }, identity: {} } : { discovery: true },
  );
  closers.push(() => cp.close());
  const url = cp.url;
  const sidecar = async (service: string, id: string, appPort?: number) => {
    const identity = opts.auth
      ? { joinToken: (await cp.cp.identity.tokens.create('default', service, 60_000)).token }
      : undefined;
    const p = await startControlledProxy({
      ...(identity ? { identity } : {}),
      control: [url],
      id,
      settings: {
        service,
        inbound: any,
        outbound: any,
        admin: any,
        drainTimeout: '1s',
        ...(appPort ? { app: { port: appPort } } : {}),
      },
      labels: {},
      checks: [],
      client: { log: () => {} },
    });
    closers.unshift(() => p.close());
    return p;
  };
  const ratings: ControlledProxy[] = [];
  for (const id of ['ratings-1', 'ratings-2']) {
    const app = await startHttpServer((req, res) => {
      req.resume();
      if (req.url?.startsWith('/fail')) return void res.writeHead(503).end();
      // A gRPC-style failure: HTTP 200 with grpc-status 14 (UNAVAILABLE) in the headers.
      if (req.url?.includes('grpc-unavailable'))
        return void res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '14' }).end();
      res.end(id);
    });
    closers.push(() => app.close());
    ratings.push(await sidecar('ratings', id, app.port));
  }
  const client = await sidecar('client', 'client-1');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  closers.push(async () => agent.destroy());
  const call = (path: string, headers: Record<string, string> = {}) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: client.addr.outbound.port,
          path,
          agent,
          headers: { host: 'ratings', ...headers },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
  // Wait until the client knows both ratings endpoints (lazy subscription on first call).
  const deadline = Date.now() + 10_000;
  for (;;) {
    await call('/warm');
    const eps = client.proxy.config.services.find((s) => s.name === 'ratings')?.endpoints.length ?? 0;
    if (eps === 2) break;
    if (Date.now() > deadline) throw new Error(`client sees ${eps} ratings endpoints`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const operatorToken = opts.auth
    ? (await cp.cp.tokens.create({ name: 'ops', role: 'operator' })).token
    : undefined;
  return {
    cp,
    ...(operatorToken ? { operatorToken } : {}),
    client,
    ratings,
    call,
    async load(n, path = (i) => `/r/${i % 3}`) {
      let next = 0;
      const end = Date.now() + 20_000;
      const worker = async () => {
        while (next < n && Date.now() < end) await call(path(next++));
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    },
    async poison() {
      await cp.store.put(
        KEYS.resource('HTTPRoute', 'default', 'bad-route'),
        JSON.stringify({
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name: 'bad-route', namespace: 'default' },
          spec: { parentRefs: [{ kind: 'Service', name: 'ratings' }], bogus: true, rules: [] },
        }),
      );
    },
    async close() {
      for (const fn of closers) await fn().catch(() => {});
    },
  };
}

/** Poll until `fn` returns a truthy value. */
export async function until<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  ms: number,
  what: string,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
