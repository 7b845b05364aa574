/**
 * What the route timeout covers beyond the tries themselves: the wait for a bulkhead slot,
 * and not the fallback that answers once it fired.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { request } from 'undici';
import { startHttpServer, startProxy } from '../support/mesh.ts';

function policy(service: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: `p-${service}` },
    spec: { targetRef: { name: service }, ...spec },
  };
}

test('the route timeout bounds the wait for a bulkhead slot', async (t) => {
  const hung: ServerResponse[] = [];
  const app = await startHttpServer((_req, res) => void hung.push(res));
  t.after(() => app.close());
  const p = await startProxy({
    proxy: { service: 'web' },
    services: [{ name: 'slow', endpoints: [{ address: '127.0.0.1', port: app.port, meshed: false }] }],
    resources: [policy('slow', { timeouts: { request: '1s' }, connectionPool: { maxRequests: 1 } })],
  });
  t.after(async () => {
    await p.close();
    for (const r of hung) r.destroy();
  });
  const t0 = performance.now();
  const send = () =>
    request(`${p.outboundUrl}/`, { headers: { host: 'slow' } }).then(async (r) => {
      await r.body.text();
      return { status: r.statusCode, ms: performance.now() - t0 };
    });
  const [a, b] = await Promise.all([send(), send()]);
  assert.equal(a.status, 504);
  assert.equal(b.status, 504);
  // Queued behind a 1 s request, then 1 s of its own would be ~2 s; the route timeout ends both at ~1 s.
  assert.ok(b.ms < 1700, `queued request took ${Math.round(b.ms)} ms`);
});

test('a fallback service answers after the route timeout fired', async (t) => {
  const hung: ServerResponse[] = [];
  const slow = await startHttpServer((_req, res) => void hung.push(res));
  const spare = await startHttpServer((_req, res) => res.end('from spare'));
  t.after(async () => {
    await slow.close();
    await spare.close();
  });
  const p = await startProxy({
    proxy: { service: 'web' },
    services: [
      { name: 'slow', endpoints: [{ address: '127.0.0.1', port: slow.port, meshed: false }] },
      { name: 'spare', endpoints: [{ address: '127.0.0.1', port: spare.port, meshed: false }] },
    ],
    resources: [policy('slow', { timeouts: { request: '300ms' }, fallback: { service: 'spare' } })],
  });
  t.after(async () => {
    await p.close();
    for (const r of hung) r.destroy();
  });
  const r = await request(`${p.outboundUrl}/`, { headers: { host: 'slow' } });
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['x-hexmesh-fallback'], 'timeout');
  assert.equal(await r.body.text(), 'from spare');
});
