/**
 * The discovery server against a real SQLite store and real WebSocket clients: registration
 * under a lease, per-destination snapshots and deltas, shared views, coalescing, acks and
 * nacks, and bad input (garbage frames, floods) closing the stream with a reason.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KEYS } from '../../src/store/store.ts';
import { RawClient, startHarness, until, type Harness, type Msg } from './discovery-support.ts';

const svc = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { ports: [{ port: 9080 }], ...extra },
});

const split = (name: string, v1: number, v2: number) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name },
  spec: {
    parentRefs: [{ kind: 'Service', name: 'reviews' }],
    rules: [
      {
        backendRefs: [
          { name: 'reviews-v1', weight: v1 },
          { name: 'reviews-v2', weight: v2 },
        ],
      },
    ],
  },
});

type Svc = { name: string; endpoints: { port: number; labels: Record<string, string> }[] };
const services = (m: Msg) => (m.services ?? (m.upserts as { services: unknown[] }).services) as Svc[];

describe('discovery server', () => {
  let h: Harness;
  const clients: RawClient[] = [];
  const client = async () => {
    const c = new RawClient(h.port);
    clients.push(c);
    await c.opened;
    return c;
  };

  before(async () => {
    h = await startHarness({ leaseTtl: 1500, pingInterval: 300, maxSubscriptions: 8, messagesPerSecond: 50 });
    await h.putResource(svc('reviews'));
    await h.putResource(svc('reviews-v1', { instancesOf: 'reviews', selector: { version: 'v1' } }));
    await h.putResource(svc('reviews-v2', { instancesOf: 'reviews', selector: { version: 'v2' } }));
    await h.putInstance({
      id: 'r1',
      service: 'reviews',
      port: 9080,
      meshPort: 4143,
      labels: { version: 'v1' },
    });
    await h.putInstance({
      id: 'r2',
      service: 'reviews',
      port: 9081,
      meshPort: 4144,
      labels: { version: 'v2' },
    });
    await h.putInstance({
      id: 'r3',
      service: 'reviews',
      port: 9082,
      status: 'critical',
      labels: { version: 'v2' },
    });
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await h.close();
  });

  it('hello registers the instance and the proxy under one lease, then sends a snapshot', async () => {
    const c = await client();
    c.hello({
      id: 'web-1',
      service: 'web',
      appPort: 8080,
      meshPort: 4243,
      adminAddress: '127.0.0.1:4191',
      labels: { version: 'v1' },
    });
    const snap = await c.next((m) => m.type === 'snapshot');
    assert.deepEqual(snap.subscriptions, ['web.default']);
    assert.ok((snap.version ?? 0) > 0);
    const inst = await h.store.get(KEYS.instance('default', 'web', 'web-1'));
    const proxy = await h.store.get(`${KEYS.proxies}default/web/web-1`);
    assert.ok(inst && proxy);
    assert.equal(inst.lease, proxy.lease);
    assert.ok(inst.lease > 0);
    const rec = JSON.parse(inst.value);
    assert.equal(rec.status, 'passing', 'no checks: passing once the sidecar is connected');
    assert.equal(rec.meshPort, 4243);
    assert.equal(rec.port, 8080);
    // The proxy's own instance is in its snapshot (its own service is implicitly subscribed).
    assert.deepEqual(
      services(snap).map((s) => s.name),
      ['web'],
    );
    c.close(1000);
    await until(
      async () => !(await h.store.get(KEYS.instance('default', 'web', 'web-1'))),
      3000,
      'deregistration',
    );
  });

  it('subscribe sends the destination, its routes, and the backends they name (selector views)', async () => {
    await h.putResource(split('reviews-split', 90, 10));
    const c = await client();
    c.hello({ id: 'p-1', service: 'productpage', appPort: 9000 });
    await c.next((m) => m.type === 'snapshot');
    c.send({ type: 'subscribe', services: ['reviews'] });
    const snap = await c.next((m) => m.type === 'snapshot');
    assert.deepEqual(snap.subscriptions, [
      'productpage.default',
      'reviews-v1.default',
      'reviews-v2.default',
      'reviews.default',
    ]);
    const byName = new Map(services(snap).map((s) => [s.name, s]));
    assert.deepEqual(
      byName
        .get('reviews')!
        .endpoints.map((e) => e.port)
        .sort(),
      [4143, 4144],
      'critical r3 excluded',
    );
    assert.deepEqual(
      byName.get('reviews-v1')!.endpoints.map((e) => e.labels.version),
      ['v1'],
    );
    assert.deepEqual(
      byName.get('reviews-v2')!.endpoints.map((e) => e.port),
      [4144],
    );
    const kinds = (snap.resources as { kind: string; metadata: { name: string } }[]).map(
      (r) => `${r.kind}/${r.metadata.name}`,
    );
    assert.ok(kinds.includes('HTTPRoute/reviews-split'));
    assert.ok(kinds.includes('Service/reviews-v2'));
    c.send({ type: 'ack', version: snap.version });
    await until(
      () => h.discovery.proxies().find((p) => p.id === 'p-1' && p.acked === snap.version),
      2000,
      'ack',
    );

    // An unrelated change sends nothing; a change to a subscribed destination sends one delta.
    await h.putInstance({ id: 'x1', service: 'unrelated', port: 1 });
    await h.putInstance({
      id: 'r2',
      service: 'reviews',
      port: 9081,
      meshPort: 4144,
      labels: { version: 'v2' },
      status: 'critical',
    });
    const d = await c.next((m) => m.type === 'delta');
    assert.ok(d.version! > snap.version!);
    const up = services(d);
    assert.deepEqual(up.map((s) => s.name).sort(), ['reviews', 'reviews-v2']);
    assert.deepEqual(up.find((s) => s.name === 'reviews-v2')!.endpoints, []);
    c.send({ type: 'nack', version: d.version, error: 'route reviews-split: boom' });
    await until(
      () =>
        h.discovery.proxies().find((p) => p.id === 'p-1' && p.nack?.error === 'route reviews-split: boom'),
      2000,
      'nack',
    );
    await h.putInstance({
      id: 'r2',
      service: 'reviews',
      port: 9081,
      meshPort: 4144,
      labels: { version: 'v2' },
    });
    await c.next((m) => m.type === 'delta');
    assert.equal(c.messages.length, 0, 'the unrelated service was never sent');

    // Deleting the route drops the backends it pulled in.
    await h.store.delete(KEYS.resource('HTTPRoute', 'default', 'reviews-split'));
    const rm = await c.next((m) => m.type === 'delta');
    const removes = rm.removes as { services: string[]; resources: { kind: string; name: string }[] };
    assert.deepEqual(removes.services.sort(), ['reviews-v1.default', 'reviews-v2.default']);
    assert.ok(removes.resources.some((r) => r.kind === 'HTTPRoute' && r.name === 'reviews-split'));
    c.close(1000);
  });

  it('coalesces a burst of writes into few deltas per subscriber, the same for every subscriber', async () => {
    const subs = await Promise.all([1, 2, 3, 4, 5].map(() => client()));
    subs.forEach((c, i) => c.hello({ id: `burst-${i}`, service: 'client', appPort: 7000 + i }, ['ratings']));
    for (const c of subs) await c.next((m) => m.type === 'snapshot');
    const writes = [];
    for (let i = 0; i < 40; i++)
      writes.push(
        h.putInstance({ id: `rt-${i}`, service: 'ratings', port: 10_000 + i, meshPort: 20_000 + i }),
      );
    await Promise.all(writes);
    for (const c of subs) {
      await until(
        () => {
          const last = c.messages.filter((m) => m.type === 'delta').at(-1);
          return last && services(last).find((s) => s.name === 'ratings')?.endpoints.length === 40;
        },
        3000,
        'all 40 endpoints',
      );
      const deltas = c.messages.filter((m) => m.type === 'delta');
      assert.ok(deltas.length <= 4, `${deltas.length} deltas for 40 writes`);
    }
    const a = JSON.stringify(subs[0].messages.at(-1));
    for (const c of subs) assert.equal(JSON.stringify(c.messages.at(-1)), a);
    for (const c of subs) c.close(1000);
  });

  it('closes garbage streams with a code and a reason, and keeps serving', async () => {
    const cases: [string | Buffer, number, RegExp][] = [
      ['{not json', 1007, /invalid JSON/],
      [JSON.stringify({ type: 'subscribe', services: ['x'] }), 1008, /expected hello first/],
      [JSON.stringify({ type: 'hello', node: { id: 'a b', service: 'x', address: 'h' } }), 1008, /node\.id/],
      [JSON.stringify({ type: 'launch-missiles' }), 1008, /type/],
      // A registration that would write its own lines into rendered config files (catalog/instance.ts).
      [
        JSON.stringify({
          type: 'hello',
          node: {
            id: 'h1',
            service: 'web',
            address: '127.0.0.1:9 check addr 127.0.0.1 port 1 #',
            appPort: 1,
          },
        }),
        1008,
        /node\.address/,
      ],
      [
        JSON.stringify({
          type: 'hello',
          node: {
            id: 'h2',
            service: 'web',
            address: '127.0.0.1',
            appPort: 1,
            labels: { a: 'x\nserver evil' },
          },
        }),
        1008,
        /node\.labels/,
      ],
      [Buffer.from([0, 1, 2]), 1003, /binary/],
      ['x'.repeat(300 * 1024), 1009, /.*/],
    ];
    for (const [frame, code, reason] of cases) {
      const c = await client();
      c.ws.send(frame, { binary: Buffer.isBuffer(frame) });
      const closed = await c.whenClosed();
      assert.equal(closed.code, code, `${String(frame).slice(0, 40)} → ${JSON.stringify(closed)}`);
      assert.match(closed.reason, reason);
    }
    const ok = await client();
    ok.hello({ id: 'after-garbage', service: 'web', appPort: 8081 });
    await ok.next((m) => m.type === 'snapshot');
    ok.close(1000);
  });

  it('bounds subscriptions and message floods', async () => {
    const c = await client();
    c.hello({ id: 'flood-1', service: 'web', appPort: 8082 });
    await c.next((m) => m.type === 'snapshot');
    c.send({ type: 'subscribe', services: Array.from({ length: 50 }, (_, i) => `svc-${i}`) });
    const err = await c.next((m) => m.type === 'error');
    assert.match(String(err.message), /subscription limit of 8 reached: 43 refused/);
    const snap = await c.next((m) => m.type === 'snapshot');
    assert.equal((snap.subscriptions as string[]).length, 8);

    const f = await client();
    f.hello({ id: 'flood-2', service: 'web', appPort: 8083 });
    await f.next((m) => m.type === 'snapshot');
    for (let i = 0; i < 500 && !f.closed; i++) f.send({ type: 'ack', version: 0 });
    const closed = await f.whenClosed();
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /messages per second/);
    // The server is fine and the first stream still gets updates.
    await h.putInstance({ id: 's0', service: 'svc-0', port: 1000, meshPort: 1001 });
    const d = await c.next((m) => m.type === 'delta' && services(m).some((s) => s.name === 'svc-0'));
    assert.equal(services(d).find((s) => s.name === 'svc-0')!.endpoints.length, 1);
    c.close(1000);
  });

  it('a proxy that vanishes without closing disappears when its lease lapses; status reports land in the catalog', async () => {
    const c = await client();
    c.hello({
      id: 'ghost',
      service: 'ghost',
      appPort: 8090,
      checks: [{ name: 'app', type: 'http', path: '/health' }],
    });
    await c.next((m) => m.type === 'snapshot');
    const key = KEYS.instance('default', 'ghost', 'ghost');
    assert.equal(JSON.parse((await h.store.get(key))!.value).status, 'critical', 'checks: starts critical');
    c.send({ type: 'status', status: 'passing', output: 'HTTP 200 from /health' });
    await until(async () => JSON.parse((await h.store.get(key))!.value).status === 'passing', 2000, 'status');
    // Stop answering pings (pause the socket) without a close frame.
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    await until(async () => !(await h.store.get(key)), 6000, 'lease expiry');
    assert.equal(
      h.discovery.proxies().some((p) => p.id === 'ghost'),
      false,
    );
    c.ws.terminate();
  });

  it('a second hello with the same id replaces the first stream', async () => {
    const a = await client();
    a.hello({ id: 'dup', service: 'web', appPort: 8100 });
    await a.next((m) => m.type === 'snapshot');
    const b = await client();
    b.hello({ id: 'dup', service: 'web', appPort: 8100 });
    await b.next((m) => m.type === 'snapshot');
    const closed = await a.whenClosed();
    assert.equal(closed.code, 4001);
    assert.ok(await h.store.get(KEYS.instance('default', 'web', 'dup')), 'the instance stays registered');
    const res = await fetch(`${h.url}/v1/proxies`);
    const list = (await res.json()) as { id: string }[];
    assert.equal(list.filter((p) => p.id === 'dup').length, 1);
    b.close(1000);
  });
});
