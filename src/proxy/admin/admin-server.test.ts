import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { ProxyMetrics } from '../../telemetry/metrics.ts';
import { AdminServer, type AdminServerOptions } from './admin-server.ts';

async function start(overrides: Partial<AdminServerOptions> = {}) {
  const admin = new AdminServer({
    address: '127.0.0.1',
    port: 0,
    metrics: new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false }),
    isReady: () => true,
    configDump: () => ({}),
    onShutdown: () => {},
    ...overrides,
  });
  const { port } = await admin.listen();
  return { admin, base: `http://127.0.0.1:${port}` };
}

test('/ready follows isReady() and says why it is not ready; /live is always 200', async (t) => {
  let ready = false;
  const { admin, base } = await start({
    isReady: () => ready,
    notReadyReason: () => 'config not loaded yet',
  });
  t.after(() => admin.close());

  let res = await fetch(`${base}/ready`);
  assert.equal(res.status, 503);
  assert.equal(await res.text(), 'config not loaded yet\n');
  res = await fetch(`${base}/live`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'live\n');

  ready = true;
  res = await fetch(`${base}/ready?verbose=1`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'ready\n');
  ready = false;
  assert.equal((await fetch(`${base}/ready`)).status, 503);
});

test('/ready without a reason callback answers 503 "not ready"', async (t) => {
  const { admin, base } = await start({ isReady: () => false });
  t.after(() => admin.close());
  const res = await fetch(`${base}/ready`);
  assert.equal(res.status, 503);
  assert.equal(await res.text(), 'not ready\n');
});

test('/config serves configDump() as pretty JSON, and a throwing dump is a 500', async (t) => {
  let dump: () => unknown = () => ({ version: 3, listeners: [{ port: 15001 }] });
  const { admin, base } = await start({ configDump: () => dump() });
  t.after(() => admin.close());

  let res = await fetch(`${base}/config`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
  const text = await res.text();
  assert.deepEqual(JSON.parse(text), { version: 3, listeners: [{ port: 15001 }] });
  assert.ok(text.includes('\n  "version": 3'), 'indented');

  dump = () => {
    throw new Error('config store offline');
  };
  res = await fetch(`${base}/config`);
  assert.equal(res.status, 500);
  assert.equal(await res.text(), 'admin /config failed: config store offline\n');
});

test('POST /shutdown answers 202 and then calls back once; GET on it is 405', async (t) => {
  let calls = 0;
  let called!: () => void;
  const calledOnce = new Promise<void>((resolve) => (called = resolve));
  const { admin, base } = await start({
    onShutdown: () => {
      calls++;
      called();
    },
  });
  t.after(() => admin.close());

  const wrong = await fetch(`${base}/shutdown`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'POST');
  await wrong.text();
  assert.equal(calls, 0);

  const res = await fetch(`${base}/shutdown`, { method: 'POST', headers: { 'x-hexmesh-admin': '1' } });
  assert.equal(res.status, 202);
  assert.equal(await res.text(), 'shutting down\n');
  await calledOnce;
  const again = await fetch(`${base}/shutdown`, { method: 'POST', headers: { 'x-hexmesh-admin': '1' } });
  assert.equal(again.status, 202);
  assert.equal(await again.text(), 'already shutting down\n');
  assert.equal(calls, 1);
});

test('unknown paths are 404 with a one-line body; wrong methods on known paths are 405', async (t) => {
  const { admin, base } = await start();
  t.after(() => admin.close());
  const res = await fetch(`${base}/nope?x=1`);
  assert.equal(res.status, 404);
  assert.equal(await res.text(), 'no admin endpoint /nope\n');
  const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  await post.text();
});

test('/metrics serves the Prometheus text format of this proxy', async (t) => {
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop', processMetrics: false });
  metrics.setConfigVersion(12);
  const { admin, base } = await start({ metrics });
  t.after(() => admin.close());
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  assert.match(text, /^# TYPE hexmesh_config_version gauge$/m);
  assert.match(text, /^hexmesh_config_version 12$/m);
});

test('listen on a taken port fails with HEXMESH_ERR_LISTEN; close() is idempotent and frees the port', async () => {
  const { admin, base } = await start();
  const port = Number(new URL(base).port);
  const clash = new AdminServer({
    address: '127.0.0.1',
    port,
    metrics: new ProxyMetrics({ service: 'x', namespace: 'y', processMetrics: false }),
    isReady: () => true,
    configDump: () => null,
    onShutdown: () => {},
  });
  await assert.rejects(
    clash.listen(),
    (e) => e instanceof HexmeshError && e.code === 'HEXMESH_ERR_LISTEN' && e.message.includes(String(port)),
  );
  await clash.close();

  // A kept-alive connection must not hold close() open.
  await (await fetch(`${base}/live`)).text();
  await Promise.all([admin.close(), admin.close()]);
  await admin.close();
  await assert.rejects(fetch(`${base}/live`));
});

/** A GET/POST with a chosen Host header (fetch cannot set Host). */
function withHost(
  base: string,
  path: string,
  host: string | undefined,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: init.method ?? 'GET',
        setHost: false,
        headers: { ...(host === undefined ? {} : { host }), ...init.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

test('issue 9: a Host other than a loopback name of this listener is refused with 421 (DNS rebinding)', async (t) => {
  const { admin, base } = await start({ configDump: () => ({ secret: 'config' }) });
  t.after(() => admin.close());
  const port = new URL(base).port;
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
    const r = await withHost(base, '/config', host);
    assert.equal(r.status, 200, `${host}: ${r.body}`);
  }
  for (const host of [
    `attacker.example:${port}`,
    'attacker.example',
    `127.0.0.1:${Number(port) + 1}`,
    `localhost.attacker.example:${port}`,
    '127.0.0.1',
    '',
  ]) {
    const r = await withHost(base, '/config', host);
    assert.equal(r.status, 421, `${String(host)}: ${r.status} ${r.body}`);
    assert.doesNotMatch(r.body, /secret/);
    assert.match(r.body, /DNS-rebinding/);
  }
  // No Host at all (HTTP/1.1): Node's parser already answers 400.
  assert.equal((await withHost(base, '/config', undefined)).status, 400);
  // Every endpoint, not only /config.
  assert.equal((await withHost(base, '/metrics', `attacker.example:${port}`)).status, 421);
});

test('issue 9: a state-changing request without x-hexmesh-admin is refused with 403 (cross-site POST)', async (t) => {
  let calls = 0;
  const { admin, base } = await start({ onShutdown: () => calls++ });
  t.after(() => admin.close());
  const host = `127.0.0.1:${new URL(base).port}`;
  // What a page's <form> or fetch(..., {mode: 'no-cors'}) can send without a preflight.
  const simple = await withHost(base, '/shutdown', host, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: 'http://attacker.example' },
    body: 'x',
  });
  assert.equal(simple.status, 403);
  assert.match(simple.body, /x-hexmesh-admin: 1/);
  const empty = await withHost(base, '/shutdown', host, {
    method: 'POST',
    headers: { 'x-hexmesh-admin': '' },
  });
  assert.equal(empty.status, 403);
  assert.equal(calls, 0);
  const ok = await withHost(base, '/shutdown', host, { method: 'POST', headers: { 'x-hexmesh-admin': '1' } });
  assert.equal(ok.status, 202);
});

test('issue 9: hostChecker: a wildcard bind also accepts the machine own addresses and name; a specific bind only its address', async () => {
  const { hostChecker, splitHost } = await import('./admin-guard.ts');
  const { hostname, networkInterfaces } = await import('node:os');
  const any = hostChecker('0.0.0.0', 4191);
  const addrs = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));
  for (const a of addrs) assert.ok(any(a.includes(':') ? `[${a}]:4191` : `${a}:4191`), a);
  assert.ok(any(`${hostname()}:4191`));
  assert.ok(any('LOCALHOST:4191'));
  assert.equal(any('attacker.example:4191'), false);
  assert.equal(any('127.0.0.1:4192'), false);
  assert.equal(any('127.0.0.1:4191:1'), false);
  const one = hostChecker('10.1.2.3', 80);
  assert.ok(one('10.1.2.3'), 'no port means 80');
  assert.ok(one('127.0.0.1:80'));
  assert.equal(one('10.1.2.4'), false);
  assert.equal(one(`${hostname()}`), false);
  assert.deepEqual(splitHost('[::1]:4191'), { host: '::1', port: 4191 });
  assert.equal(splitHost('[::1'), undefined);
});

test('a client that connects and sends nothing, or drips its headers, is cut at headersTimeoutMs with 408', async (t) => {
  const { admin, base } = await start({ headersTimeoutMs: 300 });
  t.after(() => admin.close());
  const port = Number(new URL(base).port);
  const hold = (drip: string) =>
    new Promise<{ text: string; ms: number }>((resolve) => {
      const t0 = Date.now();
      const s = net.connect(port, '127.0.0.1');
      let i = 0;
      let text = '';
      const timer = setInterval(() => i < drip.length && s.write(drip[i++]), 50);
      const giveUp = setTimeout(() => s.destroy(), 5000);
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('error', () => {});
      s.on('close', () => {
        clearInterval(timer);
        clearTimeout(giveUp);
        resolve({ text, ms: Date.now() - t0 });
      });
    });
  const [idle, dripped] = await Promise.all([
    hold(''),
    hold(`GET /ready HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Pad: ${'a'.repeat(200)}\r\n\r\n`),
  ]);
  for (const [name, r] of Object.entries({ idle, dripped })) {
    assert.match(r.text, /^HTTP\/1\.1 408 /, `${name}: ${r.text}`);
    assert.ok(r.ms < 2000, `${name}: closed after ${r.ms} ms`);
  }
  assert.equal((await fetch(`${base}/live`)).status, 200);
});
