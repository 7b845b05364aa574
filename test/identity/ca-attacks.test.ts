/**
 * The CA against a hostile workload of service `web` that holds a valid join token or
 * certificate, over the real API (`POST /v1/identity/certificate`, the public door): weak or
 * foreign keys, a CSR naming another instance, CSR bytes the renewal proof does not cover,
 * and renewals from certificates that should no longer renew (expired, from a dropped CA,
 * got with a join token since revoked).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as x509 from '../../src/identity/x509-lib.ts';
import { createKeyAndCsr, renewalSignature } from '../../src/identity/csr.ts';
import { call, startCp, type TestCp } from '../control/helpers.ts';
import { tempDir } from './helpers.ts';

const run = promisify(execFile);
const WEB = 'spiffe://hexmesh.local/ns/shop/sa/web';

async function joinToken(t: TestCp, instance?: string): Promise<string> {
  const r = await call(t.url, 'POST', '/v1/identity/tokens', {
    namespace: 'shop',
    serviceAccount: 'web',
    ttl: '1h',
    ...(instance !== undefined && { instance }),
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.token as string;
}

const sign = (t: TestCp, body: unknown) => call(t.url, 'POST', '/v1/identity/certificate', body);

/** A certificate for `web` got with `token`, and its key. */
async function webCert(t: TestCp, token: string): Promise<{ chain: string; key: string }> {
  const kc = await createKeyAndCsr();
  const r = await sign(t, { csr: kc.csrPem, token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { chain: r.body.certChainPem as string, key: kc.keyPem };
}

/** A renewal request (a new CSR signed over by the current certificate's key) and the new key. */
async function renewal(current: { chain: string; key: string }) {
  const next = await createKeyAndCsr();
  return {
    body: {
      csr: next.csrPem,
      renewal: { certificate: current.chain, signature: renewalSignature(current.key, next.csrPem) },
    },
    key: next.keyPem,
  };
}

/** Renew `current`; the new certificate and key. */
async function renew(t: TestCp, current: { chain: string; key: string }) {
  const r = await renewal(current);
  const a = await sign(t, r.body);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return { chain: a.body.certChainPem as string, key: r.key };
}

/** A CSR for a WebCrypto key of `alg`, self-signed as the workload would. */
async function webcryptoCsr(alg: RsaHashedKeyGenParams | EcKeyGenParams | Algorithm, signing: unknown) {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: signing as Algorithm,
  });
  return csr.toString('pem');
}

/** A CSR for an openssl EC key on `curve` (curves WebCrypto cannot even make). */
async function opensslCsr(dir: string, curve: string): Promise<string> {
  const key = join(dir, `${curve}.key`);
  await run('openssl', ['ecparam', '-name', curve, '-genkey', '-noout', '-out', key]);
  const out = join(dir, `${curve}.csr`);
  await run('openssl', ['req', '-new', '-key', key, '-subj', '/CN=web', '-out', out]);
  return readFile(out, 'utf8');
}

test('a weak or foreign key is refused naming the key, whatever the curve (RSA 1024, P-384, P-192, secp256k1, Ed25519)', async () => {
  const t = await startCp({ identity: {} });
  const d = await tempDir();
  try {
    const token = await joinToken(t);
    const cases: [string, string, RegExp][] = [
      [
        'RSA 1024',
        await webcryptoCsr(
          {
            name: 'RSASSA-PKCS1-v1_5',
            modulusLength: 1024,
            publicExponent: new Uint8Array([1, 0, 1]),
            hash: 'SHA-256',
          },
          { name: 'RSASSA-PKCS1-v1_5' },
        ),
        /got RSA 1024-bit/,
      ],
      [
        'P-384',
        await webcryptoCsr({ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }),
        /got EC secp384r1/,
      ],
      // Curves WebCrypto cannot verify: the key is what is refused, not "a bad signature".
      ['P-192', await opensslCsr(d.dir, 'prime192v1'), /got EC prime192v1/],
      ['secp256k1', await opensslCsr(d.dir, 'secp256k1'), /got EC secp256k1/],
      ['Ed25519', await webcryptoCsr({ name: 'Ed25519' }, { name: 'Ed25519' }), /got ed25519/],
    ];
    for (const [what, csr, got] of cases) {
      const r = await sign(t, { csr, token });
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'HEXMESH_ERR_BAD_REQUEST');
      assert.match(r.body.error.message, /CSR refused: key must be ECDSA P-256/, what);
      assert.match(r.body.error.message, got, what);
    }
    // The same token with a P-256 key is served (the refusals are the key's).
    assert.equal((await sign(t, { csr: (await createKeyAndCsr()).csrPem, token })).status, 200);
  } finally {
    await t.close();
    await d.close();
  }
});

test("a CSR's subject naming another instance is ignored: the certificate names the token's instance, or none", async () => {
  const t = await startCp({ identity: {} });
  try {
    const csrNaming = async (cn: string) => {
      const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: `CN=${cn}, O=hexmesh, OU=admin`,
        keys,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
      });
      return csr.toString('pem');
    };
    const bound = await sign(t, { csr: await csrNaming('web-2'), token: await joinToken(t, 'web-1') });
    assert.equal(bound.status, 200, JSON.stringify(bound.body));
    const boundCert = new X509Certificate(bound.body.certChainPem);
    assert.match(boundCert.subject, /^CN=web-1$/m);
    assert.doesNotMatch(boundCert.subject, /web-2|admin/);
    // A service-wide token: the certificate binds no instance, whatever the CSR names.
    const wide = await sign(t, { csr: await csrNaming('exact-1'), token: await joinToken(t) });
    assert.equal(wide.status, 200, JSON.stringify(wide.body));
    const wideCert = new X509Certificate(wide.body.certChainPem);
    assert.doesNotMatch(wideCert.subject, /CN=|exact-1|admin/);
    assert.equal(wideCert.subjectAltName, `URI:${WEB}`);
  } finally {
    await t.close();
  }
});

test('a CSR that is not exactly one PEM request is a 400 (on renewals it was a 500); the proof covers that CSR', async () => {
  const t = await startCp({ identity: {} });
  try {
    const current = await webCert(t, await joinToken(t));
    const r = (await renewal(current)).body;
    const der = Buffer.from(x509.PemConverter.decode(r.csr)[0]);
    // The CSR as base64 DER (no PEM armour): refused as not PEM (it was a 500 on renewals).
    for (const csr of [der.toString('base64'), der.toString('hex')]) {
      const a = await sign(t, { ...r, csr });
      assert.equal(a.status, 400, JSON.stringify(a.body));
      assert.match(a.body.error.message, /CSR refused: not a PEM PKCS#10 certificate request/);
    }
    // Another CSR than the one signed over: 401. The signed one with another appended: 400.
    const other = await createKeyAndCsr();
    const swapped = await sign(t, { ...r, csr: other.csrPem });
    assert.equal(swapped.status, 401, JSON.stringify(swapped.body));
    assert.match(swapped.body.error.message, /signature over the CSR does not verify/);
    const appended = await sign(t, { ...r, csr: r.csr + other.csrPem });
    assert.equal(appended.status, 400, JSON.stringify(appended.body));
    assert.match(appended.body.error.message, /2 PEM blocks/);
    // The request as sent renews.
    assert.equal((await sign(t, r)).status, 200);
  } finally {
    await t.close();
  }
});

test('a CSR whose subjectAltName or basicConstraints extension is malformed is a 400 (it was a 500)', async () => {
  const t = await startCp({ identity: {} });
  try {
    const token = await joinToken(t);
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    for (const [oid, name] of [
      ['2.5.29.17', 'SubjectAlternativeName'],
      ['2.5.29.19', 'BasicConstraints'],
    ]) {
      // Signed by its key, so only the extension's content is wrong (an OCTET STRING, not the schema).
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        keys,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
        extensions: [new x509.Extension(oid, false, new Uint8Array([0x04, 0x02, 0xff, 0xff]))],
      });
      const r = await sign(t, { csr: csr.toString('pem'), token });
      assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'HEXMESH_ERR_BAD_REQUEST');
      assert.match(
        r.body.error.message,
        new RegExp(`CSR refused: its attributes or extensions are malformed \\(.*${name}`),
      );
    }
  } finally {
    await t.close();
  }
});

test('renewal is refused with an expired certificate, and with one whose CA a forced rotation dropped', async () => {
  let clock = Date.now();
  const t = await startCp({ identity: { leafTtlMs: 3_600_000 }, now: () => clock });
  try {
    const token = await joinToken(t);
    const old = await webCert(t, token);
    clock += 3_600_001;
    const expired = await sign(t, (await renewal(old)).body);
    assert.equal(expired.status, 401, JSON.stringify(expired.body));
    assert.match(expired.body.error.message, /the current certificate is not valid now/);

    const current = await webCert(t, await joinToken(t));
    assert.equal((await call(t.url, 'POST', '/v1/identity/rotation/start')).status, 200);
    // While both roots are trusted, the old CA's certificate renews (onto the new CA)...
    const moved = await renew(t, current);
    assert.notEqual(
      new X509Certificate(moved.chain).issuer,
      new X509Certificate(current.chain).issuer,
      'renewed from the new authority',
    );
    assert.equal((await call(t.url, 'POST', '/v1/identity/rotation/finish?force=1')).status, 200);
    // ...once the old root is gone, it is a stranger.
    const dropped = await sign(t, (await renewal(current)).body);
    assert.equal(dropped.status, 401, JSON.stringify(dropped.body));
    assert.match(dropped.body.error.message, /not issued by this CA/);
    assert.equal((await sign(t, (await renewal(moved)).body)).status, 200);
  } finally {
    await t.close();
  }
});

test('a certificate got with a join token that was revoked since does not renew, nor do its renewals (revoking evicts)', async () => {
  const t = await startCp({ identity: {} });
  try {
    const token = await joinToken(t, 'web-1');
    const first = await webCert(t, token);
    // Renewals chain while the token stands: the renewed certificate renews too.
    const renewed = await renew(t, await renew(t, first));
    const tokenId = token.split('.')[1];
    assert.equal((await call(t.url, 'DELETE', `/v1/identity/tokens/${tokenId}`)).status, 200);
    for (const cert of [first, renewed]) {
      const r = await sign(t, (await renewal(cert)).body);
      assert.equal(r.status, 401, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'HEXMESH_ERR_UNAUTHENTICATED');
      assert.match(r.body.error.message, new RegExp(`join token ${tokenId}, which was revoked`));
    }
    // A certificate of another token of the same service still renews: only the revoked one's are cut.
    const other = await webCert(t, await joinToken(t, 'web-1'));
    await renew(t, other);
  } finally {
    await t.close();
  }
});

test('an expired join token does not stop renewals: it only has to last until the first certificate', async () => {
  let clock = Date.now();
  const t = await startCp({ identity: {}, now: () => clock });
  try {
    const token = await joinToken(t);
    const first = await webCert(t, token);
    clock += 3_600_001; // the token's hour is over; the certificate's 24 h are not
    assert.equal((await sign(t, { csr: (await createKeyAndCsr()).csrPem, token })).status, 401);
    const renewed = await renew(t, first);
    assert.equal(new X509Certificate(renewed.chain).subjectAltName, `URI:${WEB}`);
  } finally {
    await t.close();
  }
});

test('extensions a CSR asks for (keyCertSign, cRLSign, codeSigning, any EKU) are not copied: the CA sets its own profile', async () => {
  const t = await startCp({ identity: {} });
  try {
    const kc = await createKeyAndCsr({
      extraExtensions: [
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning, '2.5.29.37.0']),
      ],
    });
    const r = await sign(t, { csr: kc.csrPem, token: await joinToken(t) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const leaf = new x509.X509Certificate(r.body.certChainPem);
    const ku = leaf.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(ku.usages & x509.KeyUsageFlags.keyCertSign, 0, 'no keyCertSign');
    assert.equal(ku.usages & x509.KeyUsageFlags.cRLSign, 0, 'no cRLSign');
    assert.deepEqual(
      [...leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages],
      [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    );
    assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)!.ca, false);
    const life = leaf.notAfter.getTime() - Date.now();
    assert.ok(life <= 24 * 3_600_000, `the CA's lifetime (${life} ms)`);
  } finally {
    await t.close();
  }
});

test("the control plane's own SPIFFE ID is never issued at the workload door, whatever the proof", async () => {
  const t = await startCp({ identity: {} });
  try {
    // Proxies take any mesh certificate naming it as the control plane (control-tls.ts), so a
    // join token made for it by mistake must not hand out a control-plane impersonator.
    const { token } = await t.cp.identity.tokens.create('hexmesh-system', 'control-plane', 600_000);
    for (const csr of [
      (await createKeyAndCsr()).csrPem,
      (await createKeyAndCsr({ spiffeId: 'spiffe://hexmesh.local/ns/hexmesh-system/sa/control-plane' }))
        .csrPem,
    ]) {
      const r = await sign(t, { csr, token });
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'HEXMESH_ERR_DENIED');
      assert.match(r.body.error.message, /control plane's own identity/);
    }
    // Other identities of that namespace are workloads like any other.
    const other = await t.cp.identity.tokens.create('hexmesh-system', 'gateway', 600_000);
    assert.equal((await sign(t, { csr: (await createKeyAndCsr()).csrPem, token: other.token })).status, 200);
    // The control plane's serving certificate still comes from its own path.
    const serving = await t.cp.identity.issueServing({ dnsNames: ['localhost'] });
    assert.equal(
      new X509Certificate(serving.certChainPem).subjectAltName,
      'URI:spiffe://hexmesh.local/ns/hexmesh-system/sa/control-plane, DNS:localhost',
    );
  } finally {
    await t.close();
  }
});

test('a body past the size limits is refused before anything is parsed (CSR 16 KiB: 400, body 1 MiB: 413)', async () => {
  const t = await startCp({ identity: {} });
  try {
    const token = await joinToken(t);
    const big = await sign(t, { csr: 'A'.repeat(16_385), token });
    assert.equal(big.status, 400, JSON.stringify(big.body));
    assert.match(big.body.error.message, /csr:/);
    const huge = await sign(t, { csr: 'A'.repeat(2 << 20), token });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'HEXMESH_ERR_BODY_TOO_LARGE');
  } finally {
    await t.close();
  }
});

test('certificates under ever-new proxy ids stop at the per-identity cap (429); renewals and other identities go on', async () => {
  const t = await startCp({ identity: { maxIssuedPerIdentity: 3 } });
  try {
    const token = await joinToken(t);
    const mint = async (proxyId: string, tk = token) =>
      sign(t, { csr: (await createKeyAndCsr()).csrPem, token: tk, proxyId });
    for (const id of ['p1', 'p2', 'p3']) assert.equal((await mint(id)).status, 200, id);
    // A fourth proxy id would be a fourth record: refused, naming the identity and the cap.
    const over = await mint('p4');
    assert.equal(over.status, 429, JSON.stringify(over.body));
    assert.equal(over.body.error.code, 'HEXMESH_ERR_RATE_LIMITED');
    assert.match(
      over.body.error.message,
      /spiffe:\/\/hexmesh\.local\/ns\/shop\/sa\/web holds 3 live certificates/,
    );
    assert.match(over.body.error.message, /--max-certs-per-identity/);
    // A proxy that already has its record renews as before (its record is overwritten).
    assert.equal((await mint('p2')).status, 200);
    // Another identity is not affected by web's records.
    const other = await call(t.url, 'POST', '/v1/identity/tokens', {
      namespace: 'shop',
      serviceAccount: 'ratings',
      ttl: '1h',
    });
    assert.equal((await mint('p4', other.body.token as string)).status, 200);
    // The store holds web's three records, not one per request.
    const kept = await t.store.range('/hexmesh/identity/issued/');
    assert.equal(kept.kvs.filter((kv) => kv.key.includes(encodeURIComponent(WEB))).length, 3);
  } finally {
    await t.close();
  }
});
