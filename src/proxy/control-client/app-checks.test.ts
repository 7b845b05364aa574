/**
 * The sidecar's own app checks against a real app socket: an app that starts listening
 * late becomes passing about a second after it does (start-up retries), not a whole
 * interval later; after the first pass the check runs at its interval; a failing check
 * after that is reported at the next interval; close() stops every run.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { AppChecks } from './app-checks.ts';

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

test('an app that listens late is passing within about a second, not a 10 s interval later', async (t) => {
  const port = await freePort();
  const reports: { status: string; at: number }[] = [];
  let hits = 0;
  const app = createServer((_req, res) => {
    hits++;
    res.end('ok');
  });
  const started = Date.now();
  const checks = new AppChecks(
    [{ name: 'check-0', type: 'http', path: '/health', interval: 10_000 }],
    { host: '127.0.0.1', port },
    (status) => reports.push({ status, at: Date.now() - started }),
  );
  t.after(() => {
    checks.close();
    app.close();
  });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(reports[0]?.status, 'critical', 'nothing listens yet: critical');
  const listenedAt = Date.now() - started;
  await listen(app, port);
  const deadline = Date.now() + 5000;
  while (!reports.some((r) => r.status === 'passing') && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const passing = reports.find((r) => r.status === 'passing');
  assert.ok(passing, `never passing: ${JSON.stringify(reports)}`);
  assert.ok(passing.at - listenedAt < 2500, `passing ${passing.at - listenedAt} ms after listen`);
  // Passed once: now at its 10 s interval, so no further runs for a while.
  const after = hits;
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(hits, after, 'after the first pass the check waits its interval');
});

test('after the first pass a failing app is reported at the interval; close() stops the runs', async (t) => {
  let healthy = true;
  let hits = 0;
  const app = createServer((_req, res) => {
    hits++;
    res.statusCode = healthy ? 200 : 503;
    res.end();
  });
  const port = await listen(app);
  const reports: string[] = [];
  const checks = new AppChecks(
    [{ name: 'check-0', type: 'http', path: '/health', interval: 300 }],
    { host: '127.0.0.1', port },
    (status) => reports.push(status),
  );
  t.after(() => {
    checks.close();
    app.close();
  });
  const until = async (what: string, ok: () => boolean) => {
    const deadline = Date.now() + 5000;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${reports.join(',')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until('passing', () => reports.at(-1) === 'passing');
  healthy = false;
  await until('critical', () => reports.at(-1) === 'critical');
  healthy = true;
  await until('passing again', () => reports.at(-1) === 'passing');
  checks.close();
  const at = hits;
  await new Promise((r) => setTimeout(r, 900));
  assert.ok(hits <= at + 1, `closed checks kept running: ${hits - at} more`);
});
