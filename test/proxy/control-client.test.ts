/**
 * End to end: a real control plane (ControlPlane on a SQLite store in a temp dir), real
 * sidecars steered by it, real apps, real HTTP. Lazy subscription on the first request, a
 * 90/10 split applied through the REST API, scale-down, a nack that keeps the last good
 * config, and static stability across a control-plane restart.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlPlane } from '../../src/control/control-plane.ts';
import {
  startControlledProxy,
  type ControlledProxy,
} from '../../src/proxy/control-client/controlled-proxy.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS } from '../../src/store/store.ts';
import { startHttpServer } from '../support/mesh.ts';
import { until } from '../control/discovery-support.ts';

const any = { address: '127.0.0.1', port: 0 };
const FAST = { backoff: { initial: 50, max: 500 }, log: () => {} };

async function startCp(
  dir: string,
  port = 0,
): Promise<{ cp: ControlPlane; store: SqliteStore; url: string }> {
  const store = await SqliteStore.open(join(dir, 'hexmesh.db'), { synchronous: 'normal' });
  const cp = new ControlPlane({ listen: { address: '127.0.0.1', port }, store, leaderTtlMs: 2000 });
  const a = await cp.start();
  return { cp, store, url: `http://127.0.0.1:${a.port}` };
}

async function put(url: string, doc: { kind: string; metadata: { name: string } }): Promise<void> {
  const res = await fetch(`${url}/v1/resources/${doc.kind}/default/${doc.metadata.name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(doc),
  });
  assert.ok(res.ok, `PUT ${doc.kind}/${doc.metadata.name}: ${res.status} ${await res.text()}`);
}

const service = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { ports: [{ port: 80 }], ...spec },
});

const route = (name: string, backends: { name: string; weight: number }[], filters?: unknown[]) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name },
  spec: {
    parentRefs: [{ kind: 'Service', name: 'b' }],
    rules: [{ backendRefs: backends, ...(filters ? { filters } : {}) }],
  },
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One GET through a sidecar's outbound listener with `Host: host` (fetch cannot set Host). */
function get(
  port: number,
  host: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** `n` GETs from A's app to service b through A's sidecar; counts answers by body. */
async function call(a: ControlledProxy, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const res = await get(a.addr.outbound.port, 'b');
    const body = res.status === 200 ? res.body : `${res.status} ${res.headers['x-hexmesh-error']}`;
    counts.set(body, (counts.get(body) ?? 0) + 1);
  }
  return counts;
}

describe('config distribution end to end', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-cd-'));
  let cp: ControlPlane;
  let store: SqliteStore;
  let url: string;
  let cpPort: number;
  const apps: { close(): Promise<void> }[] = [];
  const proxies: ControlledProxy[] = [];
  let a: ControlledProxy;
  let b1: ControlledProxy;
  let b2: ControlledProxy;

  const sidecar = async (
    service: string,
    appPort: number | undefined,
    labels: Record<string, string> = {},
  ) => {
    const p = await startControlledProxy({
      control: [url],
      settings: {
        service,
        inbound: any,
        outbound: any,
        admin: any,
        drainTimeout: '1s',
        ...(appPort ? { app: { port: appPort } } : {}),
      },
      id: `${service}-${labels.version ?? 'x'}`,
      labels,
      client: FAST,
    });
    proxies.push(p);
    return p;
  };

  before(async () => {
    ({ cp, store, url } = await startCp(dir));
    cpPort = Number(new URL(url).port);
    await put(url, service('b'));
    await put(url, service('b-v1', { instancesOf: 'b', selector: { version: 'v1' } }));
    await put(url, service('b-v2', { instancesOf: 'b', selector: { version: 'v2' } }));
    const v1 = await startHttpServer((_q, r) => r.end('v1'));
    const v2 = await startHttpServer((_q, r) => r.end('v2'));
    const appA = await startHttpServer((_q, r) => r.end('a'));
    apps.push(v1, v2, appA);
    b1 = await sidecar('b', v1.port, { version: 'v1' });
    b2 = await sidecar('b', v2.port, { version: 'v2' });
    a = await sidecar('a', appA.port);
    await Promise.all([a, b1, b2].map((p) => p.client.firstConfig));
  });

  after(async () => {
    for (const p of proxies) await p.close();
    await cp.destroy();
    await store.close();
    for (const s of apps) await s.close();
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/ready answers 200 only after the first snapshot was applied', async () => {
    const res = await fetch(`http://127.0.0.1:${a.addr.admin.port}/ready`);
    assert.equal(res.status, 200);
    // A proxy whose control plane is unreachable binds its listeners but is not ready.
    const lonely = await startControlledProxy({
      control: ['http://127.0.0.1:1'],
      settings: { service: 'lonely', inbound: any, outbound: any, admin: any },
      client: FAST,
    });
    proxies.push(lonely);
    const r2 = await fetch(`http://127.0.0.1:${lonely.addr.admin.port}/ready`);
    assert.equal(r2.status, 503);
    assert.match(await r2.text(), /waiting for the first config/);
  });

  it('lazily subscribes on the first request to an unknown destination', async () => {
    assert.equal(
      a.proxy.config.services.some((s) => s.name === 'b'),
      false,
      'b not pushed before it is called',
    );
    const counts = await call(a, 20);
    assert.equal((counts.get('v1') ?? 0) + (counts.get('v2') ?? 0), 20, JSON.stringify([...counts]));
    // A destination that does not exist still fails fast with unknown-service.
    const t0 = Date.now();
    const res = await get(a.addr.outbound.port, 'nope');
    assert.equal(res.status, 404);
    assert.equal(res.headers['x-hexmesh-error'], 'unknown-service');
    assert.ok(Date.now() - t0 < 2500);
  });

  it('a 90/10 split applied through the REST API takes effect within a second', async () => {
    const before = a.client.applied;
    const t0 = Date.now();
    await put(
      url,
      route('b-split', [
        { name: 'b-v1', weight: 90 },
        { name: 'b-v2', weight: 10 },
      ]),
    );
    await until(
      () => a.proxy.config.resources.some((r) => r.metadata.name === 'b-split'),
      1000,
      'route in force',
    );
    assert.ok(a.client.applied > before);
    assert.ok(Date.now() - t0 < 1000);
    const counts = await call(a, 400);
    const v2 = counts.get('v2') ?? 0;
    assert.equal((counts.get('v1') ?? 0) + v2, 400, JSON.stringify([...counts]));
    assert.ok(v2 >= 12 && v2 <= 80, `v2 got ${v2}/400`);
    // The control plane recorded A's ack of that version.
    const list = (await (await fetch(`${url}/v1/proxies`)).json()) as { id: string; acked: number }[];
    assert.ok(list.find((p) => p.id === 'a-x')!.acked >= a.client.applied);
  });

  it('a rejected update is nacked and the last good config keeps serving', async () => {
    const good = a.client.applied;
    // Written to the store directly (the REST API would refuse it): an unknown field.
    const bad = route('b-bad', [{ name: 'b-v1', weight: 1 }]);
    await store.put(
      KEYS.resource('HTTPRoute', 'default', 'b-bad'),
      JSON.stringify({
        ...bad,
        metadata: { name: 'b-bad', namespace: 'default' },
        spec: { ...bad.spec, bogus: true },
      }),
    );
    await until(() => a.client.lastError, 2000, 'refusal');
    assert.match(a.client.lastError!, /bogus/);
    assert.equal(a.client.applied, good);
    const list = await until(
      async () => {
        const l = (await (await fetch(`${url}/v1/proxies`)).json()) as {
          id: string;
          nack?: { error: string };
        }[];
        return l.find((p) => p.id === 'a-x')?.nack ? l : undefined;
      },
      2000,
      'nack recorded',
    );
    assert.match(list.find((p) => p.id === 'a-x')!.nack!.error, /bogus/);
    const counts = await call(a, 20);
    assert.equal(
      (counts.get('v1') ?? 0) + (counts.get('v2') ?? 0),
      20,
      'still served with the last good config',
    );
    // Fixing it (deleting the bad resource) brings updates back.
    await store.delete(KEYS.resource('HTTPRoute', 'default', 'b-bad'));
    await until(() => a.client.lastError === undefined && a.client.applied > good, 2000, 'recovery');
  });

  it('scaling an instance down moves traffic off it', async () => {
    await fetch(`${url}/v1/resources/HTTPRoute/default/b-split`, { method: 'DELETE' });
    await until(
      () => !a.proxy.config.resources.some((r) => r.metadata.name === 'b-split'),
      2000,
      'route removed',
    );
    await b2.shutdown();
    await until(
      () => a.proxy.config.services.find((s) => s.name === 'b')?.endpoints.length === 1,
      2000,
      'endpoint gone',
    );
    const counts = await call(a, 50);
    assert.deepEqual([...counts], [['v1', 50]]);
  });

  it('keeps serving while the control plane is down, and follows it again after a restart', async () => {
    await cp.close();
    await store.close();
    const counts = await call(a, 30);
    assert.deepEqual([...counts], [['v1', 30]], 'static stability: last config keeps serving');
    assert.equal(a.client.connected, false);

    const connects = a.client.connects;
    ({ cp, store, url } = await startCp(dir, cpPort));
    await until(() => a.client.connected && a.client.connects > connects, 5000, 'reconnect');
    await put(
      url,
      route(
        'b-tagged',
        [{ name: 'b-v1', weight: 1 }],
        [
          {
            type: 'ResponseHeaderModifier',
            responseHeaderModifier: { set: [{ name: 'x-route', value: 'tagged' }] },
          },
        ],
      ),
    );
    await until(
      async () => {
        const res = await get(a.addr.outbound.port, 'b');
        return res.headers['x-route'] === 'tagged';
      },
      3000,
      'new route after restart',
    );
    const after = await call(a, 20);
    assert.deepEqual([...after], [['v1', 20]]);
  });
});
