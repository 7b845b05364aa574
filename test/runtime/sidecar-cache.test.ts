/**
 * A sidecar restarted while the control plane is down (issue 10): with its last good config
 * and certificate cached (`--cache-dir`, 0700/0600) it becomes ready from them and serves
 * over mTLS; one with nothing cached stays not ready and resets its peers' connections, so
 * they retry on an instance that serves. Real `hexmesh control` process (SIGKILLed), real
 * sidecars and apps under the local runtime, as `hexmesh up` runs them.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../src/runtime/ports.ts';
import type { InstanceSpec } from '../../src/runtime/runtime.ts';
import { workloadCertificate } from '../../src/identity/static-identity-source.ts';
import { BIN } from '../support/cli.ts';
import { flakyAppSpec, startProcessControlMesh, until as poll } from '../support/local-runtime.ts';
import { TestCa } from '../support/pki.ts';

const spec = (id: string, service: string, version: string): InstanceSpec =>
  flakyAppSpec(
    id,
    service,
    { VERSION: version },
    { version },
    { restart: { initialBackoffMs: 200, maxBackoffMs: 1000 } },
  );

/** `n` sequential requests through the client sidecar (bounded); answers by body or error. */
async function requests(port: number, n: number): Promise<{ ok: Map<string, number>; failed: string[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const ok = new Map<string, number>();
  const failed: string[] = [];
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get(
        { host: '127.0.0.1', port, path: '/', headers: { host: 'reviews' }, agent },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => {
            if (res.statusCode === 200) ok.set(body, (ok.get(body) ?? 0) + 1);
            else failed.push(`${res.statusCode} ${body.slice(0, 100)}`);
            resolve();
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        failed.push(e.message);
        resolve();
      });
    });
  for (let i = 0; i < n; i++) await Promise.all([one(), one(), one(), one()]);
  agent.destroy();
  return { ok, failed };
}

/** Wait for `fn` to give a value; its errors count as "not yet" (the control plane may be down). */
const until = <T>(what: string, ms: number, fn: () => Promise<T | undefined>) =>
  poll(what, ms, fn, { everyMs: 250, retryErrors: true });

test(
  'control plane down: a restarted sidecar starts from its cached config and certificate and serves; one with no cache is skipped by its peers',
  { timeout: 180_000 },
  async (t) => {
    const mesh = await startProcessControlMesh('hexmesh-sidecar-cache-', (dir) => ({
      cacheDir: join(dir, 'cache'),
      deregisterSettleMs: 200,
    }));
    t.after(() => mesh.close());
    const { cp, api, runtime } = mesh;
    const cacheDir = join(mesh.dir, 'cache');
    await Promise.all([
      runtime.startInstance(spec('reviews-1', 'reviews', 'v1')),
      runtime.startInstance(spec('reviews-2', 'reviews', 'v1')),
      runtime.startInstance(spec('client-1', 'client', 'c')),
    ]);
    await runtime.waitHealthy(['reviews-1', 'reviews-2', 'client-1'], 60_000);
    // Peers stop sending to an instance that resets every connection through outlier
    // detection (a reset is a gateway error); retries do not avoid the endpoint that failed.
    await api.apply([
      {
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'reviews' },
        spec: {
          targetRef: { kind: 'Service', name: 'reviews' },
          outlierDetection: { consecutiveGatewayErrors: 2, maxEjectionPercent: 50 },
        },
      },
    ]);
    const info = (id: string) => runtime.list().find((i) => i.id === id)!;
    const clientPort = info('client-1').outboundPort;
    await until('reviews through the client sidecar', 30_000, async () => {
      const r = await requests(clientPort, 2);
      return r.failed.length === 0 && r.ok.get('v1') ? true : undefined;
    });
    // What a sidecar keeps: the key is a secret.
    const own = join(cacheDir, 'reviews-1');
    await until('the cache of reviews-1', 10_000, async () =>
      readdirSync(own).sort().join() === 'config.json,identity.json' ? true : undefined,
    );
    assert.equal(statSync(own).mode & 0o777, 0o700);
    for (const f of readdirSync(own)) assert.equal(statSync(join(own, f)).mode & 0o777, 0o600, f);
    assert.match(readFileSync(join(own, 'identity.json'), 'utf8'), /PRIVATE KEY/);

    await cp.kill();
    // reviews-2 loses its cache: restarted now, it has nothing to start from.
    rmSync(join(cacheDir, 'reviews-2'), { recursive: true, force: true });
    const before = { r1: info('reviews-1').sidecarPid!, r2: info('reviews-2').sidecarPid! };
    process.kill(before.r1, 'SIGKILL');
    process.kill(before.r2, 'SIGKILL');

    // reviews-1's new sidecar is ready from the cache, says so, and its app is started again.
    const ready = await until('reviews-1 ready from its cache', 60_000, async () => {
      const i = info('reviews-1');
      if (!i.sidecarPid || i.sidecarPid === before.r1 || !i.appPid || i.state !== 'running') return undefined;
      const r = await fetch(`http://127.0.0.1:${i.adminPort}/ready`);
      const body = await r.text();
      return r.status === 200 ? body : undefined;
    });
    assert.match(ready, /running from cache: control plane unreachable/);
    const metrics = await (await fetch(`http://127.0.0.1:${info('reviews-1').adminPort}/metrics`)).text();
    assert.match(metrics, /\nhexmesh_cert_expiry_seconds [1-9]/, 'the cached certificate is served');
    // reviews-2's new sidecar has neither config nor certificate: not ready.
    const r2 = await until('reviews-2 sidecar restarted', 30_000, async () => {
      const i = info('reviews-2');
      if (!i.sidecarPid || i.sidecarPid === before.r2) return undefined;
      const r = await fetch(`http://127.0.0.1:${i.adminPort}/ready`);
      return r.status === 503 ? r.text() : undefined;
    });
    assert.match(r2, /waiting for the first config/);

    // Through the mesh, with the control plane still down: every request is served (mTLS to
    // reviews-1 with the cached certificate; reviews-2's resets are retried on reviews-1).
    // reviews-1's app listens again (the sidecar became ready first).
    await until('the app of reviews-1 listening', 30_000, async () =>
      (await fetch(`http://127.0.0.1:${info('reviews-1').appPort}/healthz`)).ok ? true : undefined,
    );
    // The first requests teach the client's outlier detection: a request of the first round
    // whose three tries all land on reviews-2 before it is ejected (2 resets in a row) can fail.
    const first = await requests(clientPort, 10);
    assert.ok(first.failed.length <= 4, `at most a few failures before ejection: ${first.failed.join('; ')}`);
    assert.ok(
      first.failed.every((f) => /reset/.test(f)),
      first.failed.join('; '),
    );
    const served = await requests(clientPort, 50);
    assert.deepEqual(served.failed, [], 'no request fails');
    assert.equal(served.ok.get('v1'), 200);
    const clientMetrics = await (
      await fetch(`http://127.0.0.1:${info('client-1').adminPort}/metrics`)
    ).text();
    assert.match(
      clientMetrics,
      /hexmesh_requests_total\{direction="outbound",src_service="client",dst_service="reviews",[^}]*tls="true"\} [1-9]/,
    );

    // The control plane is back: the config it sends replaces the cached one.
    await cp.start();
    await until('reviews-1 on the control plane config', 60_000, async () => {
      const r = await fetch(`http://127.0.0.1:${info('reviews-1').adminPort}/ready`);
      return (await r.text()) === 'ready\n' ? true : undefined;
    });
    await runtime.waitHealthy(['reviews-1', 'reviews-2'], 60_000);
  },
);

test('a cached certificate past its expiry is not served: refused with a clear log, the sidecar waits for the control plane', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-sidecar-expired-'));
  const cache = join(dir, 'web-1');
  const ca = await TestCa.create();
  const id = ca.id('default', 'web');
  const issued = await ca.issue(id, {
    notBefore: new Date(Date.now() - 3 * 3_600_000),
    notAfter: new Date(Date.now() - 3_600_000),
  });
  const expiry = workloadCertificate(issued.certChainPem, issued.keyPem).notAfter.toISOString();
  mkdirSync(cache, { mode: 0o700 });
  const save = (name: string, v: unknown) =>
    writeFileSync(join(cache, name), JSON.stringify(v), { mode: 0o600 });
  save('config.json', { version: 4, services: [], resources: [], subscriptions: [], savedAt: Date.now() });
  save('identity.json', { ...issued, bundlePem: ca.rootPem, savedAt: Date.now() });
  const admin = await freePort();
  // A control plane nobody listens on.
  const control = `http://127.0.0.1:${await freePort()}`;
  const sidecar = spawn(
    process.execPath,
    [
      BIN,
      'proxy',
      '--control',
      control,
      '--service',
      'web',
      '--id',
      'web-1',
      '--cache-dir',
      cache,
      '--inbound',
      '127.0.0.1:0',
      '--outbound',
      '127.0.0.1:0',
      '--admin',
      `127.0.0.1:${admin}`,
    ],
    { env: { ...process.env, HEXMESH_JOIN_TOKEN: 'hxj_unused' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  sidecar.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  t.after(() => {
    sidecar.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  // The config is used (ready, from cache); the certificate is not.
  const ready = await until('ready from the cached config', 30_000, async () => {
    const r = await fetch(`http://127.0.0.1:${admin}/ready`);
    return r.status === 200 ? r.text() : undefined;
  });
  assert.match(
    ready,
    /running from cache: .*; no valid workload certificate: mTLS waits for the control plane/,
  );
  assert.ok(
    log.includes(`cache: the saved workload certificate for ${id} expired at ${expiry}; not used`),
    log,
  );
  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  assert.doesNotMatch(metrics, /\nhexmesh_cert_expiry_seconds [1-9]/, 'no certificate is served');
});
