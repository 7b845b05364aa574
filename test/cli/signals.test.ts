/**
 * The CLI proxy process and its signals: SIGHUP reloads (an invalid file is refused and the
 * last good config keeps routing), SIGTERM and `POST /shutdown` drain gracefully (in-flight
 * requests finish, new connections are refused, exit 0 within drainTimeout; a request longer
 * than drainTimeout is cut at the deadline).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { CliProxy } from '../support/cli.ts';
import { startHttpServer } from '../support/mesh.ts';

const dir = mkdtempSync(join(tmpdir(), 'hexmesh-signals-'));
let alpha: Awaited<ReturnType<typeof startHttpServer>>;
let beta: Awaited<ReturnType<typeof startHttpServer>>;
/** Resolvers called when the app receives a request on /slow... (so a test knows it is in flight). */
const arrived: (() => void)[] = [];

function slowApp(name: string): http.RequestListener {
  return (req, res) => {
    const m = /^\/slow\/(\d+)/.exec(req.url ?? '');
    if (!m) return void res.end(name);
    arrived.shift()?.();
    const t = setTimeout(() => res.end(`${name} slow done`), Number(m[1]));
    res.once('close', () => clearTimeout(t));
  };
}

before(async () => {
  alpha = await startHttpServer(slowApp('alpha'));
  beta = await startHttpServer(slowApp('beta'));
});
after(async () => {
  await alpha.close();
  await beta.close();
  rmSync(dir, { recursive: true, force: true });
});

const ANY = '{ address: 127.0.0.1, port: 0 }';
function config(opts: {
  version: number;
  services: [string, number][];
  drainTimeout?: string;
  extra?: string;
}) {
  const services = opts.services
    .map(
      ([name, port]) =>
        `  - name: ${name}\n    endpoints: [{ address: 127.0.0.1, port: ${port}, meshed: false }]\n`,
    )
    .join('');
  return (
    `version: ${opts.version}\nproxy:\n  service: client\n  outbound: ${ANY}\n  inbound: ${ANY}\n  admin: ${ANY}\n` +
    `  drainTimeout: ${opts.drainTimeout ?? '5s'}\nservices:\n${services}${opts.extra ?? ''}`
  );
}

async function get(p: CliProxy, host: string, path = '/'): Promise<{ status: number; body: string }> {
  const r = await request(`${p.outboundUrl}${path}`, { headers: { host } });
  return { status: r.statusCode, body: await r.body.text() };
}

async function admin(p: CliProxy, path: string, method: 'GET' | 'POST' = 'GET') {
  const r = await request(`${p.adminUrl}${path}`, {
    method,
    headers: method === 'POST' ? { 'x-hexmesh-admin': '1' } : {},
  });
  return { status: r.statusCode, body: await r.body.text() };
}

function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
}

function inFlight(): Promise<void> {
  return new Promise((r) => arrived.push(r));
}

async function start(
  name: string,
  text: string,
  t: { after(fn: () => Promise<void>): void },
): Promise<CliProxy> {
  const file = join(dir, name);
  writeFileSync(file, text);
  const p = await CliProxy.start(file);
  t.after(() => p.kill());
  return p;
}

test('SIGHUP: an invalid file is refused and counted, the old config keeps routing; a valid one applies', async (t) => {
  const file = join(dir, 'reload.yaml');
  writeFileSync(file, config({ version: 1, services: [['alpha', alpha.port]] }));
  const p = await CliProxy.start(file);
  t.after(() => p.kill());

  assert.deepEqual(await get(p, 'alpha'), { status: 200, body: 'alpha' });
  assert.equal((await get(p, 'beta')).status, 404);
  assert.equal((await admin(p, '/ready')).status, 200);

  // 1. Invalid: every problem named, nothing applied.
  writeFileSync(
    file,
    config({
      version: 2,
      services: [
        ['alpha', alpha.port],
        ['beta', beta.port],
      ],
    }).replace('drainTimeout: 5s', 'drainTimeout: soon\n  bogus: 1'),
  );
  p.child.kill('SIGHUP');
  await p.waitFor('stderr', /reload refused, keeping the running config[\s\S]*proxy\.drainTimeout[\s\S]*\n/);
  assert.match(p.stderr, /proxy: unknown field "bogus"/);
  assert.deepEqual(await get(p, 'alpha'), { status: 200, body: 'alpha' });
  assert.equal((await get(p, 'beta')).status, 404, 'the refused config must not apply');
  let metrics = (await admin(p, '/metrics')).body;
  assert.equal(metric(metrics, 'hexmesh_config_rejections_total'), 1);
  assert.equal(metric(metrics, 'hexmesh_config_version'), 1);

  // 2. Valid: the new service becomes reachable and /config shows it.
  writeFileSync(
    file,
    config({
      version: 4,
      services: [
        ['alpha', alpha.port],
        ['beta', beta.port],
      ],
    }),
  );
  p.child.kill('SIGHUP');
  await p.waitFor('stdout', /reloaded .* \(version 4\)/);
  assert.deepEqual(await get(p, 'beta'), { status: 200, body: 'beta' });
  assert.deepEqual(await get(p, 'alpha'), { status: 200, body: 'alpha' });
  const dump = JSON.parse((await admin(p, '/config')).body);
  assert.equal(dump.version, 4);
  assert.deepEqual(
    dump.services.map((s: { name: string }) => s.name),
    ['alpha', 'beta'],
  );
  metrics = (await admin(p, '/metrics')).body;
  assert.equal(metric(metrics, 'hexmesh_config_version'), 4);
  assert.equal(metric(metrics, 'hexmesh_config_rejections_total'), 1);
  assert.equal(p.child.exitCode, null, 'still running');
});

/** Drive a drain: a request in flight, then `trigger`; returns what happened. */
async function drain(p: CliProxy, slowMs: number, trigger: () => Promise<void>) {
  const arrivedAtApp = inFlight();
  const slow = get(p, 'alpha', `/slow/${slowMs}`).then(
    (r) => r,
    (err: Error) => err,
  );
  await arrivedAtApp;
  const t0 = Date.now();
  await trigger();
  // Readiness flips to 503 while draining (the admin listener stays up until the end).
  const ready = await admin(p, '/ready').catch((e: Error) => e);
  // New connections are refused once draining started.
  const fresh = await request(`${p.outboundUrl}/`, { headers: { host: 'alpha' } }).then(
    async (r) => `served ${r.statusCode} ${await r.body.text()}`,
    (e: NodeJS.ErrnoException) => e.code ?? e.message,
  );
  const result = await slow;
  const exit = await p.waitExit(15_000);
  return { ready, fresh, result, exit, elapsed: Date.now() - t0 };
}

test('SIGTERM: the in-flight request completes, new connections are refused, exit 0', async (t) => {
  const p = await start(
    'term.yaml',
    config({ version: 1, services: [['alpha', alpha.port]], drainTimeout: '5s' }),
    t,
  );
  const d = await drain(p, 1000, async () => {
    p.child.kill('SIGTERM');
    // The signal is handled on the proxy's own loop: ask for readiness once it says it drains.
    await p.waitFor('stdout', /SIGTERM: draining/);
  });
  assert.deepEqual(d.result, { status: 200, body: 'alpha slow done' });
  assert.ok(
    !(d.ready instanceof Error) && d.ready.status === 503,
    `ready during drain: ${JSON.stringify(d.ready)}`,
  );
  assert.match((d.ready as { body: string }).body, /draining/);
  assert.equal(d.fresh, 'ECONNREFUSED');
  assert.deepEqual(d.exit, { code: 0, signal: null });
  assert.ok(d.elapsed < 5000 + 3000, `exit took ${d.elapsed} ms`);
});

test('SIGTERM: a request longer than drainTimeout is cut at the deadline and the process still exits 0', async (t) => {
  const p = await start(
    'cut.yaml',
    config({ version: 1, services: [['alpha', alpha.port]], drainTimeout: '1s' }),
    t,
  );
  const d = await drain(p, 20_000, async () => void p.child.kill('SIGTERM'));
  assert.ok(d.result instanceof Error, `expected the request to be cut, got ${JSON.stringify(d.result)}`);
  assert.deepEqual(d.exit, { code: 0, signal: null });
  assert.ok(d.elapsed >= 900, `cut before the deadline: ${d.elapsed} ms`);
  assert.ok(d.elapsed < 1000 + 4000, `exit took ${d.elapsed} ms`);
});

test('POST /shutdown on the admin port drains the same way', async (t) => {
  const p = await start(
    'admin.yaml',
    config({ version: 1, services: [['alpha', alpha.port]], drainTimeout: '5s' }),
    t,
  );
  let accepted: { status: number; body: string } | undefined;
  const d = await drain(p, 1000, async () => {
    accepted = await admin(p, '/shutdown', 'POST');
  });
  assert.equal(accepted?.status, 202);
  assert.deepEqual(d.result, { status: 200, body: 'alpha slow done' });
  assert.equal(d.fresh, 'ECONNREFUSED');
  assert.deepEqual(d.exit, { code: 0, signal: null });
});
