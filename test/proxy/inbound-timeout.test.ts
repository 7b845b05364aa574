/**
 * The inbound side bounds the wait for the local app's response headers
 * (`proxy.inboundTimeout`, default 5 min), also when the caller's route timeout is 0.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { request } from 'undici';
import { parseProxyConfig } from '../../src/config/load.ts';
import { startHttpServer, startProxy } from '../support/mesh.ts';

test('proxy.inboundTimeout defaults to the stream idle timeout (5 min)', () => {
  assert.equal(parseProxyConfig({ proxy: { service: 'web' } }).proxy.inboundTimeout, 300_000);
});

test('an app that never answers: 504 timeout after proxy.inboundTimeout, even with a route timeout of 0', async (t) => {
  const hung: ServerResponse[] = [];
  let arrived = 0;
  const app = await startHttpServer((_req, res) => {
    arrived++;
    hung.push(res);
  });
  const server = await startProxy({
    proxy: {
      service: 'slow',
      app: { host: '127.0.0.1', port: app.port, protocol: 'http' },
      inboundTimeout: '1s',
    },
  });
  const client = await startProxy({
    proxy: { service: 'web' },
    services: [{ name: 'slow', endpoints: [{ address: '127.0.0.1', port: server.inboundPort }] }],
    resources: [
      {
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'p-slow' },
        spec: { targetRef: { name: 'slow' }, timeouts: { request: '0s' } },
      },
    ],
  });
  t.after(async () => {
    await client.close();
    await server.close();
    for (const r of hung) r.destroy();
    await app.close();
  });

  const t0 = performance.now();
  const r = await request(`${client.outboundUrl}/never`, {
    headers: { host: 'slow' },
    headersTimeout: 20_000,
  });
  const body = await r.body.text();
  const ms = performance.now() - t0;
  assert.equal(r.statusCode, 504, body);
  assert.equal(r.headers['x-hexmesh-error'], 'timeout');
  assert.ok(ms >= 900 && ms < 10_000, `answered after ${Math.round(ms)} ms`);
  assert.equal(arrived, 1, 'the request reached the app once');

  // Straight to the inbound listener: the same bound.
  const direct = await request(`http://127.0.0.1:${server.inboundPort}/never`, {
    headers: { host: 'slow' },
    headersTimeout: 20_000,
  });
  await direct.body.text();
  assert.equal(direct.statusCode, 504);
});
