/** The real `hexmesh identity` / `hexmesh check` CLI against a control plane, a controlled proxy's identity, and no secret in any output. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startControlledProxy } from '../../src/proxy/control-client/controlled-proxy.ts';
import { runCli } from '../support/cli.ts';
import { call, startCp } from '../control/helpers.ts';
import { createKeyAndCsr } from '../../src/identity/csr.ts';

const HOUR = 3_600_000;

test('hexmesh check: ok for a fresh CA; warns for an intermediate < 30 days and a workload certificate < 6 h (short-lived test CA)', async () => {
  const fresh = await startCp({ identity: {} });
  const short = await startCp({ identity: { intermediateTtlMs: 10 * 24 * HOUR, leafTtlMs: 2 * HOUR } });
  try {
    const ok = await runCli(['check', '--control', fresh.url]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /\[ok\] {3}ca-root .*valid until/);
    assert.match(ok.stdout, /\[ok\] {3}ca-intermediate/);
    assert.match(ok.stdout, /\[ok\] {3}workload-certs: 0 live/);
    assert.doesNotMatch(ok.stdout, /\[warn\]|\[fail\]/);

    const token = (
      await call(short.url, 'POST', '/v1/identity/tokens', { namespace: 'shop', serviceAccount: 'web' })
    ).body.token;
    const r = await call(short.url, 'POST', '/v1/identity/certificate', {
      csr: (await createKeyAndCsr()).csrPem,
      token,
      proxyId: 'web-1',
    });
    assert.equal(r.status, 200);
    const warn = await runCli(['check', '--control', short.url]);
    assert.equal(warn.code, 0, warn.stderr);
    assert.match(warn.stdout, /\[warn\] ca-intermediate \S+: expires in (9|10) days/);
    assert.match(warn.stdout, /\[ok\] {3}ca-root/);
    assert.match(
      warn.stdout,
      /\[warn\] workload-cert web-1: spiffe:\/\/hexmesh\.local\/ns\/shop\/sa\/web: expires in 1\d\d min/,
    );
    const strict = await runCli(['check', '--strict', '--control', short.url, '-o', 'json']);
    assert.equal(strict.code, 1);
    const findings = JSON.parse(strict.stdout) as { name: string; status: string }[];
    assert.ok(findings.some((f) => f.status === 'warn' && f.name === 'workload-cert web-1'));
    // Unreachable control plane: the check itself fails.
    const down = await runCli(['check', '--control', 'http://127.0.0.1:1']);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /\[fail\] control-plane: cannot reach/);
  } finally {
    await fresh.close();
    await short.close();
  }
});

test('hexmesh identity token create / rotate start|status|finish; a controlled proxy gets its identity; no key or token in outputs, /config or errors', async () => {
  const t = await startCp({ identity: {}, discovery: true });
  const outputs: string[] = [];
  try {
    const created = await runCli([
      'identity',
      'token',
      'create',
      '--namespace',
      'shop',
      '--service-account',
      'web',
      '--ttl',
      '1h',
      '--control',
      t.url,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^hxjt\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    assert.match(created.stderr, /ns\/shop\/sa\/web/);
    const secret = token.split('.')[2];

    const logs: string[] = [];
    const p = await startControlledProxy({
      control: [t.url],
      settings: {
        service: 'web',
        namespace: 'shop',
        inbound: { address: '127.0.0.1', port: 0 },
        outbound: { address: '127.0.0.1', port: 0 },
        admin: { address: '127.0.0.1', port: 0 },
      },
      id: 'web-1',
      identity: { joinToken: token },
      client: { log: (l) => logs.push(l) },
    });
    try {
      await p.identity!.ready(AbortSignal.timeout(10_000));
      assert.equal(p.identity!.current()!.spiffeId, 'spiffe://hexmesh.local/ns/shop/sa/web');
      const admin = `http://127.0.0.1:${p.addr.admin.port}`;
      const metrics = await (await fetch(`${admin}/metrics`)).text();
      const m = /hexmesh_cert_expiry_seconds(?:\{[^}]*\})? (\d+)/.exec(metrics);
      assert.ok(m, 'hexmesh_cert_expiry_seconds exported');
      assert.ok(Number(m[1]) > 23 * 3600 && Number(m[1]) <= 24 * 3600, m[1]);
      outputs.push(await (await fetch(`${admin}/config`)).text(), metrics, logs.join('\n'));

      const status = await runCli(['identity', 'rotate', 'status', '--control', t.url]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /rotation: none/);
      const start = await runCli(['identity', 'rotate', 'start', '--control', t.url]);
      assert.equal(start.code, 0, start.stderr);
      assert.match(start.stdout, /rotation: in progress/);
      const refused = await runCli(['identity', 'rotate', 'finish', '--control', t.url]);
      assert.equal(refused.code, 5, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /web-1/);
      const bundle = await runCli(['identity', 'bundle', '--control', t.url]);
      assert.equal(bundle.stdout.split('BEGIN CERTIFICATE').length - 1, 2);
      const certs = await runCli(['identity', 'certificates', '--control', t.url]);
      assert.match(certs.stdout, /web-1\s+spiffe:\/\/hexmesh\.local\/ns\/shop\/sa\/web/);
      const list = await runCli(['identity', 'token', 'list', '--control', t.url]);
      assert.match(list.stdout, /shop\s+web/);
      const forced = await runCli(['identity', 'rotate', 'finish', '--force', '--control', t.url]);
      assert.equal(forced.code, 0, forced.stderr);
      outputs.push(
        status.stdout,
        start.stdout,
        refused.stdout,
        refused.stderr,
        bundle.stdout,
        certs.stdout,
        list.stdout,
        forced.stdout,
      );
      // Error answers never echo a secret either.
      const bad = await call(t.url, 'POST', '/v1/identity/certificate', { csr: 'x', token: `${token}x` });
      outputs.push(JSON.stringify(bad.body));
      const badToken = await call(t.url, 'POST', '/v1/identity/certificate', {
        csr: (await createKeyAndCsr()).csrPem,
        token: `${token.slice(0, -1)}Z`,
      });
      assert.equal(badToken.status, 401);
      outputs.push(JSON.stringify(badToken.body));
    } finally {
      await p.close();
    }
    const all = outputs.join('\n');
    assert.ok(!all.includes('PRIVATE KEY'), 'no private key in any output');
    assert.ok(!all.includes(secret), 'no token secret in any output');
    assert.ok(!all.includes(secret.slice(0, 20)), 'not even part of it');
  } finally {
    await t.close();
  }
});
