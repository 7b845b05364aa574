import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startCp, call } from './helpers.ts';

test('the discovery WebSocket is attached to the same server; other upgrade paths are refused', async () => {
  const t = await startCp({ discovery: true });
  try {
    assert.equal((await call(t.url, 'GET', '/v1/proxies')).status, 200);
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/v1/discovery`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.close();
    const bad = new WebSocket(`${t.url.replace('http', 'ws')}/v1/nothing`);
    const err = await new Promise<Error>((resolve) => bad.once('error', resolve));
    assert.match(err.message, /404/);
  } finally {
    await t.close();
  }
});

test('close ends open blocking queries and watches at once, and is idempotent', async () => {
  const t = await startCp();
  const idx = (await call(t.url, 'GET', '/v1/catalog/services')).index!;
  const blocking = fetch(`${t.url}/v1/catalog/services?index=${idx}&wait=5m`).then(
    (r) => r.status,
    () => 'closed',
  );
  const watch = await fetch(`${t.url}/v1/watch?prefix=kv`);
  const reading = watch.text().then(
    () => 'ended',
    () => 'ended',
  );
  for (let i = 0; i < 100 && t.cp.slots.used < 2; i++) await new Promise((r) => setTimeout(r, 20));
  const started = Date.now();
  await Promise.all([t.close(), t.cp.close()]);
  assert.ok(Date.now() - started < 5000);
  assert.ok([200, 'closed'].includes(await blocking));
  assert.equal(await reading, 'ended');
});
