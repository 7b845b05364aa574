import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runCheck } from './run-check.ts';

const hung: http.ServerResponse[] = [];
const server = http.createServer((req, res) => {
  if (req.url === '/ok') res.end('ok');
  else if (req.url === '/busy') res.writeHead(429).end('slow down');
  else if (req.url === '/fail') res.writeHead(500).end('database down');
  else if (req.url === '/slow')
    hung.push(res); // never answers
  else res.writeHead(404).end();
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as AddressInfo).port;
after(async () => {
  for (const res of hung) res.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

test('HTTP check passes on 200', async () => {
  const r = await runCheck({ type: 'http', path: '/ok', timeout: 2000 }, '127.0.0.1', port);
  assert.deepEqual(r, { status: 'passing', detail: 'HTTP 200 from /ok' });
});

test('HTTP check warns on 429 (Consul)', async () => {
  const r = await runCheck({ type: 'http', path: '/busy', timeout: 2000 }, '127.0.0.1', port);
  assert.deepEqual(r, { status: 'warning', detail: 'HTTP 429 from /busy' });
});

test('HTTP check fails on 500 and says so', async () => {
  const r = await runCheck({ type: 'http', path: '/fail', timeout: 2000 }, '127.0.0.1', port);
  assert.equal(r.status, 'critical');
  assert.equal(r.detail, 'HTTP 500 from /fail: database down');
});

test('HTTP check fails on timeout', async () => {
  const r = await runCheck({ type: 'http', path: '/slow', timeout: 150 }, '127.0.0.1', port);
  assert.deepEqual(r, { status: 'critical', detail: 'timeout after 150 ms' });
});

test('HTTP check fails when the port is closed', async () => {
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const p = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const r = await runCheck({ type: 'http', path: '/ok', timeout: 2000 }, '127.0.0.1', p);
  assert.deepEqual(r, { status: 'critical', detail: `connect refused by 127.0.0.1:${p}` });
});

test('HTTP check settles as cancelled when the caller aborts', async () => {
  const ac = new AbortController();
  const pending = runCheck({ type: 'http', path: '/slow', timeout: 5000 }, '127.0.0.1', port, ac.signal);
  setTimeout(() => ac.abort(), 20);
  assert.deepEqual(await pending, { status: 'critical', detail: 'check cancelled' });
});
