/**
 * Proxy lifecycle in process: readiness follows the listeners, shutdown drains (in-flight
 * requests finish, new connections refused, /ready 503), the drain deadline cuts what is
 * left, shutdown/destroy are idempotent, and a failed start releases what it bound.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { parseProxyConfig } from '../../src/config/load.ts';
import { HexmeshError } from '../../src/errors/hexmesh-error.ts';
import { Proxy } from '../../src/proxy/proxy.ts';
import { startHttpServer } from '../support/mesh.ts';

const ANY = { address: '127.0.0.1', port: 0 };

async function setup(drainTimeout: string) {
  let arrived: () => void = () => {};
  const app = await startHttpServer((req, res) => {
    const m = /^\/slow\/(\d+)/.exec(req.url ?? '');
    if (!m) return void res.end('fast');
    arrived();
    const t = setTimeout(() => res.end('slow done'), Number(m[1]));
    res.once('close', () => clearTimeout(t));
  });
  let exited = 0;
  const proxy = new Proxy(
    parseProxyConfig({
      proxy: { service: 'client', outbound: ANY, inbound: ANY, admin: ANY, drainTimeout },
      services: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: app.port, meshed: false }] }],
    }),
    { onExit: () => exited++ },
  );
  assert.equal(proxy.ready, false, 'not ready before start');
  const addr = await proxy.start();
  const out = `http://127.0.0.1:${addr.outbound.port}`;
  const adminUrl = `http://127.0.0.1:${addr.admin.port}`;
  return {
    app,
    proxy,
    out,
    adminUrl,
    exited: () => exited,
    inFlight: () => new Promise<void>((r) => (arrived = r)),
    close: async () => {
      proxy.destroy();
      await app.close();
    },
  };
}

/**
 * The status of GET `url` (Host `app` for the mesh listeners; the admin takes only its own
 * address), on a new connection: a kept-alive one the server just closed would fail with
 * undici's socket error, not the refusal a closed listener gives.
 */
async function status(url: string): Promise<number | string> {
  const admin = url.endsWith('/ready');
  const dispatcher = new Agent({ pipelining: 0 });
  return request(url, { dispatcher, ...(admin ? {} : { headers: { host: 'app' } }) })
    .then(
      async (r) => {
        await r.body.dump();
        return r.statusCode;
      },
      (e: NodeJS.ErrnoException) => e.code ?? e.message,
    )
    .finally(() => dispatcher.close());
}

test('ready after start; shutdown drains: in-flight completes, new connections refused, /ready 503', async (t) => {
  const s = await setup('5s');
  t.after(s.close);
  assert.equal(s.proxy.ready, true);
  assert.equal(await status(`${s.adminUrl}/ready`), 200);

  const arrived = s.inFlight();
  const slow = request(`${s.out}/slow/800`, { headers: { host: 'app' } });
  await arrived;
  const done = s.proxy.shutdown();
  assert.equal(s.proxy.shutdown(), done, 'shutdown is idempotent (same promise)');
  assert.equal(s.proxy.ready, false);
  const ready = await request(`${s.adminUrl}/ready`);
  assert.equal(ready.statusCode, 503);
  assert.match(await ready.body.text(), /draining/);
  assert.equal(await status(`${s.out}/`), 'ECONNREFUSED');

  const r = await slow;
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers.connection, 'close', 'no keep-alive while draining');
  assert.equal(await r.body.text(), 'slow done');
  await done;
  assert.equal(s.exited(), 1, 'onExit called once');
  assert.equal(await status(`${s.adminUrl}/ready`), 'ECONNREFUSED', 'admin closed at the end');
  s.proxy.destroy(); // idempotent after shutdown
});

test('the drain deadline cuts a request that outlives it', async (t) => {
  const s = await setup('500ms');
  t.after(s.close);
  const arrived = s.inFlight();
  const slow = request(`${s.out}/slow/20000`, { headers: { host: 'app' } }).then(
    async (r) => r.body.text(),
    (e: Error) => e,
  );
  await arrived;
  const t0 = Date.now();
  await s.proxy.shutdown();
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 450 && elapsed < 5000, `drain took ${elapsed} ms`);
  assert.ok((await slow) instanceof Error, 'the long request was cut');
  assert.equal(s.exited(), 1);
});

test('an idle proxy shuts down at once, not after drainTimeout', async (t) => {
  const s = await setup('30s');
  t.after(s.close);
  assert.equal(await status(`${s.out}/`), 200);
  const t0 = Date.now();
  await s.proxy.shutdown();
  assert.ok(Date.now() - t0 < 5000, `idle shutdown took ${Date.now() - t0} ms`);
});

test('a port in use: start rejects naming the listener and address, and releases what it bound', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const busy = (blocker.address() as net.AddressInfo).port;
  // A free admin port, to check it is released after the failed start.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const adminPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));

  const proxy = new Proxy(
    parseProxyConfig({
      proxy: {
        service: 'web',
        outbound: ANY,
        inbound: { address: '127.0.0.1', port: busy },
        admin: { address: '127.0.0.1', port: adminPort },
      },
    }),
  );
  await assert.rejects(proxy.start(), (e: unknown) => {
    assert.ok(e instanceof HexmeshError);
    assert.equal(e.code, 'HEXMESH_ERR_LISTEN');
    assert.match(e.message, new RegExp(`inbound listener .*127\\.0\\.0\\.1:${busy}.*EADDRINUSE`));
    return true;
  });
  assert.equal(proxy.ready, false);
  // The admin listener that did bind was closed: its port can be bound again.
  const again = net.createServer();
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.listen(adminPort, '127.0.0.1', resolve);
  });
  await new Promise<void>((r) => again.close(() => r()));
});
