/**
 * Tap on a real sidecar pair: the admin `/tap` stream shows requests passing the proxy,
 * filtered, rate-limited with drops reported, bounded in viewers and memory, and never
 * carries bodies, query strings or sensitive header values.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { startHttpServer, startPair } from '../support/mesh.ts';
import { droppedTotal, events, get, openStream } from './tap-support.ts';

const SECRET = 'Bearer s3cr3t-t0ken-value';

async function mesh(t: import('node:test').TestContext) {
  const app = await startHttpServer((req, res) => {
    if (req.url?.startsWith('/fail')) return void res.writeHead(500).end('boom');
    res.setHeader('set-cookie', 'session=c00kie-secret');
    res.end('body-secret-payload');
  });
  const pair = await startPair({ service: 'ratings', appPort: app.port });
  t.after(async () => {
    await pair.close();
    await app.close();
  });
  const call = (path: string, headers: Record<string, string> = {}) =>
    get(pair.client.addr.outbound.port, 'ratings', path, headers);
  return { pair, call };
}

test('tap shows requests through the proxy with the fields promised, and nothing sensitive', async (t) => {
  const { pair, call } = await mesh(t);
  const tap = await openStream(`${pair.client.adminUrl}/tap?path=/api`);
  t.after(() => tap.close());
  assert.equal(tap.lines[0].type, 'start');
  await call('/api/v1/items?token=query-secret', { authorization: SECRET, cookie: 'sid=cookie-secret' });
  await call('/other');
  assert.ok(await tap.waitFor((l) => events(l).length >= 1));
  await new Promise((r) => setTimeout(r, 100));
  const ev = events(tap.lines);
  assert.equal(ev.length, 1, 'the path filter keeps /other out');
  const e = ev[0];
  assert.equal(e.direction, 'outbound');
  assert.equal(e.method, 'GET');
  assert.equal(e.authority, 'ratings');
  assert.equal(e.path, '/api/v1/items');
  assert.equal(e.status, 200);
  assert.equal(e.srcService, 'client');
  assert.equal(e.dstService, 'ratings');
  assert.equal(e.tls, false);
  assert.equal(typeof e.latencyMs, 'number');
  assert.match(String(e.endpoint), /^127\.0\.0\.1:\d+$/);
  const raw = tap.raw();
  for (const secret of ['s3cr3t', 'cookie-secret', 'c00kie', 'query-secret', 'body-secret', 'authorization'])
    assert.ok(!raw.includes(secret), `tap stream must not contain ${secret}`);

  // The server side's tap sees the inbound leg, with the caller known.
  const inbound = await openStream(`${pair.server.adminUrl}/tap?direction=inbound`);
  t.after(() => inbound.close());
  await call('/api/x');
  assert.ok(await inbound.waitFor((l) => events(l).length >= 1));
  const ie = events(inbound.lines)[0];
  assert.equal(ie.direction, 'inbound');
  assert.equal(ie.srcService, 'client');
  assert.equal(ie.dstService, 'ratings');
});

test('filters by method and status class, and service', async (t) => {
  const { pair, call } = await mesh(t);
  const fails = await openStream(`${pair.client.adminUrl}/tap?status=5xx&method=get`);
  const other = await openStream(`${pair.client.adminUrl}/tap?service=nobody`);
  t.after(() => (fails.close(), other.close()));
  await call('/ok');
  await call('/fail/1');
  await call('/fail/2');
  assert.ok(await fails.waitFor((l) => events(l).length >= 2));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(
    events(fails.lines).map((e) => [e.path, e.status]),
    [
      ['/fail/1', 500],
      ['/fail/2', 500],
    ],
  );
  assert.equal(events(other.lines).length, 0);
});

test('bad filters are 400; limit ends the stream; viewers are bounded', async (t) => {
  const { pair, call } = await mesh(t);
  const bad = await openStream(`${pair.client.adminUrl}/tap?status=abc`);
  assert.equal(bad.status, 400);
  assert.match(bad.raw(), /status must be like 5xx/);
  assert.equal((await openStream(`${pair.client.adminUrl}/tap?rate=0`)).status, 400);

  const limited = await openStream(`${pair.client.adminUrl}/tap?limit=2`);
  for (let i = 0; i < 4; i++) await call(`/n${i}`);
  assert.ok(await limited.waitFor((l) => l.some((x) => x.type === 'end')));
  assert.equal(events(limited.lines).length, 2);
  assert.deepEqual(limited.lines.at(-1), { type: 'end', reason: 'limit', events: 2, dropped: 0 });

  const viewers: Awaited<ReturnType<typeof openStream>>[] = [];
  for (let i = 0; i < 16; i++) viewers.push(await openStream(`${pair.client.adminUrl}/tap`));
  t.after(() => viewers.forEach((v) => v.close()));
  const extra = await openStream(`${pair.client.adminUrl}/tap`);
  assert.equal(extra.status, 503);
  assert.equal(pair.client.proxy.tap.viewers, 16);
  viewers.pop()!.close();
  const ok = await (async () => {
    const end = Date.now() + 3000;
    while (pair.client.proxy.tap.viewers !== 15 && Date.now() < end)
      await new Promise((r) => setTimeout(r, 20));
    return openStream(`${pair.client.adminUrl}/tap`);
  })();
  assert.equal(ok.status, 200, 'a viewer that left frees its place');
  ok.close();
});

test('rate limit: drops are counted and reported in-stream, events + drops = requests', async (t) => {
  const { pair } = await mesh(t);
  const tap = await openStream(`${pair.client.adminUrl}/tap?rate=5`);
  t.after(() => tap.close());
  const N = 60;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  t.after(() => agent.destroy());
  await Promise.all(
    Array.from({ length: N }, (_, i) => get(pair.client.addr.outbound.port, 'ratings', `/r${i}`, {}, agent)),
  );
  const settled = await tap.waitFor((l) => events(l).length + droppedTotal(l) >= N, 4000);
  const ev = events(tap.lines).length;
  assert.ok(settled, `events ${ev} + dropped ${droppedTotal(tap.lines)} should reach ${N}`);
  assert.ok(ev <= 15, `at 5/s only a handful pass (got ${ev})`);
  const report = tap.lines.find((l) => l.type === 'dropped')!;
  assert.ok(Number(report.rateLimited) > 0);
});

test('flood with a slow viewer: bounded memory, requests not slowed noticeably', async (t) => {
  const { pair } = await mesh(t);
  const port = pair.client.addr.outbound.port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  t.after(() => agent.destroy());
  const N = 5000;
  const run = async (n: number) => {
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < n) await get(port, 'ratings', `/flood/${next++}?k=v`, {}, agent);
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    return performance.now() - t0;
  };
  await run(300); // warm-up
  const base = await run(1500);
  // Two viewers that never read: everything they are sent sits in buffers until the cap.
  const slow = await openStream(`${pair.client.adminUrl}/tap?rate=10000`, { paused: true });
  const slow2 = await openStream(`${pair.client.adminUrl}/tap?rate=10000`, { paused: true });
  t.after(() => (slow.close(), slow2.close()));
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const flood = await run(N);
  const rss1 = process.memoryUsage().rss;
  // Loose bounds for a noisy 2-core machine: the point is "not unbounded", "not stalled".
  assert.ok(rss1 - rss0 < 150 * 1024 * 1024, `RSS grew ${(rss1 - rss0) / 1048576} MiB`);
  const perReqBase = base / 1500;
  const perReqFlood = flood / N;
  assert.ok(
    perReqFlood < perReqBase * 4 + 1,
    `per request ${perReqFlood} ms vs ${perReqBase} ms without viewers`,
  );
  // Every request is accounted for: delivered once the viewer reads, or dropped and reported.
  slow.res.resume();
  assert.ok(
    await slow.waitFor((l) => events(l).length + droppedTotal(l) >= N, 5000),
    `sent ${events(slow.lines).length} + dropped ${droppedTotal(slow.lines)} = ${N}`,
  );
});

test('a viewer that does not read loses events, not memory: the buffer cap drops and reports', async (t) => {
  const { pair, call } = await mesh(t);
  const slow = await openStream(`${pair.client.adminUrl}/tap?rate=10000`, { paused: true });
  t.after(() => slow.close());
  // Capture one real request's exchange, then offer it many times over: far more bytes than
  // the kernel's socket buffers hold, so the proxy-side cap must act.
  const hub = pair.client.proxy.tap;
  const seen: Parameters<typeof hub.publish>[] = [];
  const publish = hub.publish.bind(hub);
  hub.publish = (...args) => {
    seen.push(args);
    publish(...args);
  };
  await call('/seed');
  hub.publish = publish;
  assert.equal(seen.length, 1);
  const N = 60_000;
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) hub.publish(...seen[0]);
  const elapsed = performance.now() - t0;
  const rss1 = process.memoryUsage().rss;
  assert.ok(rss1 - rss0 < 64 * 1024 * 1024, `RSS grew ${(rss1 - rss0) / 1048576} MiB for ${N} events`);
  assert.ok(elapsed < 5000, `publishing to a stuck viewer stays cheap (${elapsed} ms)`);
  slow.res.resume();
  assert.ok(await slow.waitFor((l) => events(l).length + droppedTotal(l) >= N + 1, 5000));
  const slowDrops = slow.lines
    .filter((l) => l.type === 'dropped')
    .reduce((n, l) => n + Number(l.slowViewer), 0);
  assert.ok(slowDrops > N / 2, `most events were dropped for the slow viewer (${slowDrops})`);
});
