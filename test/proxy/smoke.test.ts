import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { startHttpServer, startPair } from '../support/mesh.ts';

test('a request crosses two sidecars and reaches the app', async (t) => {
  const app = await startHttpServer((req, res) => res.end(`hello from ${req.url}`));
  const mesh = await startPair({ service: 'greeter', appPort: app.port });
  t.after(async () => {
    await mesh.close();
    await app.close();
  });
  const r = await request(`${mesh.client.outboundUrl}/hi`, { headers: { host: 'greeter' } });
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), 'hello from /hi');
  const unknown = await request(`${mesh.client.outboundUrl}/hi`, { headers: { host: 'nobody' } });
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.headers['x-hexmesh-error'], 'unknown-service');
  assert.match(await unknown.body.text(), /unknown service "nobody"/);
});
