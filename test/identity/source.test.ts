/** The proxy-side sources against a real control plane: first certificate, renewal at half-life, rotation, static files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ControlIdentitySource } from '../../src/identity/control-identity-source.ts';
import { StaticIdentitySource } from '../../src/identity/static-identity-source.ts';
import { certInfo } from '../../src/identity/x509.ts';
import { call, startCp } from '../control/helpers.ts';
import { opensslVerify, tempDir } from './helpers.ts';

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

test('renews at half the lifetime (2 s certificates), keeps the old one until the new arrives, emits onChange', async () => {
  const t = await startCp({ identity: { leafTtlMs: 2000 } });
  const logs: string[] = [];
  try {
    const token = (
      await call(t.url, 'POST', '/v1/identity/tokens', { namespace: 'shop', serviceAccount: 'web' })
    ).body.token;
    const src = new ControlIdentitySource({
      urls: [t.url],
      joinToken: token,
      proxyId: 'web-1',
      log: (l) => logs.push(l),
    });
    const seen: string[] = [];
    const at: number[] = [];
    src.onChange(() => {
      const c = src.current();
      if (c && !seen.includes(c.certChainPem)) {
        seen.push(c.certChainPem);
        at.push(Date.now());
      }
    });
    assert.equal(src.current(), undefined);
    src.start();
    await src.ready(AbortSignal.timeout(10_000));
    const first = src.current()!;
    assert.equal(first.spiffeId, 'spiffe://hexmesh.local/ns/shop/sa/web');
    assert.match(src.trustBundlePem(), /BEGIN CERTIFICATE/);
    // 2 s lifetime (backdated 60 s for skew): renew at half of the whole validity window.
    const half = first.notBefore.getTime() + (first.notAfter.getTime() - first.notBefore.getTime()) / 2;
    await until('three certificates', () => seen.length >= 3, 12_000);
    const renewed = src.current()!;
    assert.notEqual(renewed.keyPem, first.keyPem, 'a fresh key each time');
    assert.equal(renewed.spiffeId, first.spiffeId);
    assert.ok(at[1] >= half - 50, `not renewed before half-life (${at[1]} < ${half})`);
    assert.ok(at[1] < first.notAfter.getTime(), 'renewed before expiry');
    src.close();
    const issued = await call(t.url, 'GET', '/v1/identity/certificates');
    assert.ok(issued.body.some((r: { proxyId: string }) => r.proxyId === 'web-1'));
    // Never a key or the token in the log.
    const all = logs.join('\n');
    assert.ok(!all.includes('PRIVATE KEY') && !all.includes(token.split('.')[2]), all);
  } finally {
    await t.close();
  }
});

test("a platform-token certificate renews with the token file's current token; once the platform refuses it, the current certificate is kept", async () => {
  // The platform's answer stands in for a TokenReview (test/kubernetes/token-attacks.test.ts
  // runs the real one): the token file holds the Pod's current token, rotated by the kubelet.
  let podStands = true;
  const t = await startCp({
    identity: {
      leafTtlMs: 2000,
      platformToken: async (tok) =>
        podStands && tok === 'pod-token' ? { namespace: 'shop', serviceAccount: 'web' } : undefined,
    },
  });
  const d = await tempDir();
  const logs: string[] = [];
  let src: ControlIdentitySource | undefined;
  try {
    const tokenFile = join(d.dir, 'token');
    await writeFile(tokenFile, 'pod-token\n');
    src = new ControlIdentitySource({
      urls: [t.url],
      tokenFile,
      proxyId: 'web-1',
      log: (l) => logs.push(l),
    });
    const seen = new Set<string>();
    src.onChange(() => seen.add(src!.current()!.certChainPem));
    src.start();
    await src.ready(AbortSignal.timeout(10_000));
    assert.match(certInfo(src.current()!.certChainPem).subject, /OU=platform-token/);
    // Renewals: the certificate alone is refused (401), the token file's token is not.
    await until('two renewals', () => seen.size >= 3, 12_000);
    assert.ok(logs.some((l) => /valid until/.test(l)));
    // The Pod is gone: the next renewal fails, and the proxy keeps serving what it has.
    podStands = false;
    const held = src.current()!;
    await until('a refused renewal', () => logs.some((l) => /certificate request failed/.test(l)), 8_000);
    assert.equal(src.current()!.certChainPem, held.certChainPem, 'the current certificate is kept');
  } finally {
    src?.close();
    await t.close();
    await d.close();
  }
});

test('no control plane: retries with backoff, no certificate; a bad token is retried, not fatal', async () => {
  const t = await startCp({ identity: {} });
  try {
    const logs: string[] = [];
    const src = new ControlIdentitySource({
      urls: [t.url],
      joinToken: 'hxjt.0123456789abcdef.nope',
      retryBaseMs: 20,
      retryMaxMs: 50,
      log: (l) => logs.push(l),
    });
    src.start();
    await until(
      'two failures logged',
      () => logs.filter((l) => l.includes('certificate request failed')).length >= 2,
    );
    assert.equal(src.current(), undefined);
    assert.ok(!logs.join('').includes('nope'), 'the token is not logged');
    src.close();
  } finally {
    await t.close();
  }
});

test('rotation walk-through: start → bundle has 2 roots, new leaves chain to the new root, finish refused while old certs live, succeeds after renewal', async () => {
  const t = await startCp({ identity: {} });
  const d = await tempDir();
  try {
    const token = (
      await call(t.url, 'POST', '/v1/identity/tokens', { namespace: 'shop', serviceAccount: 'web' })
    ).body.token;
    const src = new ControlIdentitySource({
      urls: [t.url],
      joinToken: token,
      proxyId: 'web-1',
      rotationRenewDelayMs: 200,
      bundleWaitMs: 5000,
    });
    src.start();
    await src.ready(AbortSignal.timeout(10_000));
    const oldCert = src.current()!;
    const oldBundle = src.trustBundlePem();

    assert.equal(
      (await call(t.url, 'POST', '/v1/identity/rotation/finish')).status,
      409,
      'nothing to finish',
    );
    const started = await call(t.url, 'POST', '/v1/identity/rotation/start');
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal(started.body.rotating, true);
    assert.equal(started.body.authorities.length, 2);
    assert.equal(
      (await call(t.url, 'POST', '/v1/identity/rotation/start')).status,
      409,
      'one rotation at a time',
    );
    const bundle = await (await fetch(`${t.url}/v1/identity/bundle`)).text();
    assert.equal(bundle.split('BEGIN CERTIFICATE').length - 1, 2);
    // The old certificate still verifies against the two-root bundle (no outage).
    assert.ok((await opensslVerify(d.dir, bundle, oldCert.certChainPem)).ok);
    // A fresh workload gets a leaf from the new intermediate: it does not chain to the old root alone.
    const other = new ControlIdentitySource({ urls: [t.url], joinToken: token, proxyId: 'web-2' });
    other.start();
    await other.ready(AbortSignal.timeout(10_000));
    const fresh = other.current()!;
    other.close();
    assert.ok((await opensslVerify(d.dir, bundle, fresh.certChainPem)).ok);
    assert.ok(
      !(await opensslVerify(d.dir, oldBundle, fresh.certChainPem)).ok,
      'new leaves chain to the new root',
    );

    // web-1 still holds an old-chain certificate unless it already re-issued; finish must refuse while it does.
    const status = await call(t.url, 'GET', '/v1/identity/rotation');
    if (src.current() === oldCert) {
      assert.deepEqual(
        status.body.pending.map((p: { proxyId: string }) => p.proxyId),
        ['web-1'],
      );
      const refused = await call(t.url, 'POST', '/v1/identity/rotation/finish');
      assert.equal(refused.status, 409);
      assert.match(refused.body.error.message, /web-1/);
    }
    // The source saw the new root and re-issues after its (short) delay.
    await until('web-1 renewed from the new intermediate', () => src.current() !== oldCert);
    assert.equal(src.trustBundlePem().split('BEGIN CERTIFICATE').length - 1, 2);
    await until(
      'no pending',
      async () => (await call(t.url, 'GET', '/v1/identity/rotation')).body.pending.length === 0,
    );
    const done = await call(t.url, 'POST', '/v1/identity/rotation/finish');
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.rotating, false);
    assert.equal(done.body.authorities.length, 1);
    await until(
      'bundle back to one root',
      () => src.trustBundlePem().split('BEGIN CERTIFICATE').length - 1 === 1,
    );
    const newBundle = src.trustBundlePem();
    assert.ok((await opensslVerify(d.dir, newBundle, src.current()!.certChainPem)).ok);
    assert.ok(
      !(await opensslVerify(d.dir, newBundle, oldCert.certChainPem)).ok,
      'old chain no longer trusted',
    );
    src.close();
  } finally {
    await t.close();
    await d.close();
  }
});

test('finish --force removes the old root even with live old certificates', async () => {
  const t = await startCp({ identity: {} });
  try {
    const token = (
      await call(t.url, 'POST', '/v1/identity/tokens', { namespace: 'shop', serviceAccount: 'web' })
    ).body.token;
    const { createKeyAndCsr } = await import('../../src/identity/csr.ts');
    const r = await call(t.url, 'POST', '/v1/identity/certificate', {
      csr: (await createKeyAndCsr()).csrPem,
      token,
      proxyId: 'p1',
    });
    assert.equal(r.status, 200);
    await call(t.url, 'POST', '/v1/identity/rotation/start');
    assert.equal((await call(t.url, 'POST', '/v1/identity/rotation/finish')).status, 409);
    const forced = await call(t.url, 'POST', '/v1/identity/rotation/finish?force=1');
    assert.equal(forced.status, 200);
    assert.equal(forced.body.authorities.length, 1);
  } finally {
    await t.close();
  }
});

test('StaticIdentitySource: from files; refuses a key that is not the certificate’s; update emits', async () => {
  const t = await startCp({ identity: {} });
  const d = await tempDir();
  try {
    const token = (
      await call(t.url, 'POST', '/v1/identity/tokens', { namespace: 'shop', serviceAccount: 'db' })
    ).body.token;
    const { createKeyAndCsr } = await import('../../src/identity/csr.ts');
    const a = await createKeyAndCsr();
    const b = await createKeyAndCsr();
    const ca = (await call(t.url, 'POST', '/v1/identity/certificate', { csr: a.csrPem, token })).body;
    const cb = (await call(t.url, 'POST', '/v1/identity/certificate', { csr: b.csrPem, token })).body;
    const bundle = await (await fetch(`${t.url}/v1/identity/bundle`)).text();
    await writeFile(join(d.dir, 'c.pem'), ca.certChainPem);
    await writeFile(join(d.dir, 'k.pem'), a.keyPem);
    await writeFile(join(d.dir, 'b.pem'), bundle);
    const s = await StaticIdentitySource.fromFiles({
      cert: join(d.dir, 'c.pem'),
      key: join(d.dir, 'k.pem'),
      bundle: join(d.dir, 'b.pem'),
    });
    assert.equal(s.current().spiffeId, 'spiffe://hexmesh.local/ns/shop/sa/db');
    assert.equal(s.current().notAfter.getTime(), certInfo(ca.certChainPem).notAfter.getTime());
    assert.equal(s.trustBundlePem(), bundle);
    let changes = 0;
    s.onChange(() => changes++);
    const err = (() => {
      try {
        s.update({ certChainPem: ca.certChainPem, keyPem: b.keyPem });
      } catch (e) {
        return e as Error;
      }
    })();
    assert.match(String(err?.message), /does not belong/);
    assert.ok(!String(err?.message).includes('PRIVATE KEY'));
    assert.equal(changes, 0);
    s.update({ certChainPem: cb.certChainPem, keyPem: b.keyPem });
    assert.equal(changes, 1);
    assert.equal(s.current().keyPem, b.keyPem);
  } finally {
    await t.close();
    await d.close();
  }
});
