import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { runCheck } from './run-check.ts';

test('TCP check passes on a listening port', async () => {
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const r = await runCheck({ type: 'tcp', timeout: 2000 }, '127.0.0.1', port);
    assert.deepEqual(r, { status: 'passing', detail: `connected to 127.0.0.1:${port}` });
    // The connection really reached the server.
    for (let i = 0; i < 100 && accepted === 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(accepted, 1);
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('TCP check fails on a closed port', async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  const r = await runCheck({ type: 'tcp', timeout: 2000 }, '127.0.0.1', port);
  assert.deepEqual(r, { status: 'critical', detail: `connect refused by 127.0.0.1:${port}` });
});
