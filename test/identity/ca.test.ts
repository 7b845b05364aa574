/** The CA: creation, files, restart over the same store, import, signing and every refusal, over the real API. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '../../src/identity/x509-lib.ts';
import { CertificateAuthority } from '../../src/identity/ca.ts';
import { createKeyAndCsr } from '../../src/identity/csr.ts';
import { certInfo } from '../../src/identity/x509.ts';
import { call, startCp, tempStore } from '../control/helpers.ts';
import { openssl, opensslVerify, tempDir } from './helpers.ts';

const TD = 'hexmesh.local';
const ID = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

test('first start creates root + intermediate under <data-dir>/ca (dir 0700, keys 0600); a restart reuses the store CA', async () => {
  const s = await tempStore();
  const d = await tempDir();
  try {
    const ca = new CertificateAuthority(s.store, { dataDir: d.dir });
    await ca.start();
    const b1 = await ca.bundle();
    assert.equal(b1.roots.length, 1);
    const caDir = join(d.dir, 'ca');
    assert.equal((await stat(caDir)).mode & 0o777, 0o700);
    const [id] = await readdir(caDir);
    assert.equal(id, b1.active);
    const files = (await readdir(join(caDir, id))).sort();
    assert.deepEqual(files, ['intermediate.key', 'intermediate.pem', 'root.key', 'root.pem']);
    assert.equal((await stat(join(caDir, id))).mode & 0o777, 0o700);
    for (const f of ['root.key', 'intermediate.key'])
      assert.equal((await stat(join(caDir, id, f))).mode & 0o777, 0o600, f);
    const root = certInfo(await readFile(join(caDir, id, 'root.pem'), 'utf8'));
    assert.ok(root.isCa);
    const years = (root.notAfter.getTime() - Date.now()) / (365 * 86_400_000);
    assert.ok(years > 9.9 && years <= 10.01, `root lives 10 y (${years})`);
    const inter = certInfo(await readFile(join(caDir, id, 'intermediate.pem'), 'utf8'));
    const days = (inter.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 364 && days <= 365.01, `intermediate lives 1 y (${days})`);
    // The root key file is a real key for the root certificate (openssl checks the pair).
    const pub1 = await openssl(['pkey', '-in', join(caDir, id, 'root.key'), '-pubout']);
    const pub2 = await openssl(['x509', '-in', join(caDir, id, 'root.pem'), '-noout', '-pubkey']);
    assert.ok(pub1.ok && pub2.ok);
    assert.equal(pub1.out, pub2.out);

    // A second replica (or a restart) over the same store: same CA, nothing new on disk.
    const again = new CertificateAuthority(s.store, { dataDir: d.dir });
    await again.start();
    assert.deepEqual((await again.bundle()).roots, b1.roots);
    assert.deepEqual(await readdir(caDir), [id]);
    // Another trust domain against that store is a clear error.
    await assert.rejects(
      new CertificateAuthority(s.store, { trustDomain: 'other.example' }).start(),
      /trust domain hexmesh\.local/,
    );
  } finally {
    await s.close();
    await d.close();
  }
});

test('two replicas starting at once agree on one CA (create-only write)', async () => {
  const s = await tempStore();
  try {
    const cas = [0, 1, 2].map(() => new CertificateAuthority(s.store));
    await Promise.all(cas.map((c) => c.start()));
    const bundles = await Promise.all(cas.map((c) => c.bundle()));
    assert.equal(new Set(bundles.map((b) => b.pem)).size, 1);
  } finally {
    await s.close();
  }
});

test("import: an operator's root (openssl-made) signs our intermediate; an operator intermediate is used as is", async () => {
  const s = await tempStore();
  const s2 = await tempStore();
  const d = await tempDir();
  try {
    const k = join(d.dir, 'op-root.key');
    const c = join(d.dir, 'op-root.pem');
    // SEC1 EC key, as many PKIs write them.
    assert.ok((await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', k])).ok);
    const made = await openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      k,
      '-out',
      c,
      '-days',
      '3650',
      '-subj',
      '/CN=Operator Root',
      '-addext',
      'basicConstraints=critical,CA:true',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    assert.ok(made.ok, made.out);
    const rootCertPem = await readFile(c, 'utf8');
    const ca = new CertificateAuthority(s.store, {
      import: { rootCertPem, rootKeyPem: await readFile(k, 'utf8') },
    });
    await ca.start();
    const b = await ca.bundle();
    assert.equal(b.roots.length, 1);
    assert.equal(certInfo(b.roots[0]).fingerprint256, certInfo(rootCertPem).fingerprint256);
    const tok = await ca.tokens.create('default', 'web', 3_600_000);
    const kc = await createKeyAndCsr();
    const issued = await ca.sign({ csr: kc.csrPem, token: tok.token });
    const v = await opensslVerify(d.dir, b.pem, issued.certChainPem);
    assert.ok(v.ok, v.out);

    // Intermediate given too (without the root key): used as is.
    const ik = join(d.dir, 'op-int.key');
    const ic = join(d.dir, 'op-int.pem');
    const ext = join(d.dir, 'ext.cnf');
    await (
      await import('node:fs/promises')
    ).writeFile(ext, 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
    assert.ok(
      (await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ik])).ok,
    );
    const csr = join(d.dir, 'op-int.csr');
    assert.ok(
      (await openssl(['req', '-new', '-key', ik, '-out', csr, '-subj', '/CN=Operator Intermediate'])).ok,
    );
    const signed = await openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      c,
      '-CAkey',
      k,
      '-CAcreateserial',
      '-out',
      ic,
      '-days',
      '365',
      '-extfile',
      ext,
    ]);
    assert.ok(signed.ok, signed.out);
    const ca2 = new CertificateAuthority(s2.store, {
      import: {
        rootCertPem,
        intermediateCertPem: await readFile(ic, 'utf8'),
        intermediateKeyPem: await readFile(ik, 'utf8'),
      },
    });
    const tok2 = await ca2.tokens.create('default', 'web', 3_600_000);
    const issued2 = await ca2.sign({ csr: (await createKeyAndCsr()).csrPem, token: tok2.token });
    assert.equal(issued2.certChainPem.split('BEGIN CERTIFICATE').length - 1, 2);
    assert.ok(
      issued2.certChainPem.endsWith(await readFile(ic, 'utf8')) ||
        issued2.certChainPem.includes((await readFile(ic, 'utf8')).trim()),
    );
    const v2 = await opensslVerify(d.dir, rootCertPem, issued2.certChainPem);
    assert.ok(v2.ok, v2.out);
    // A key that is not the certificate's is refused, without printing the key.
    const s3 = await tempStore();
    try {
      const err = await new CertificateAuthority(s3.store, {
        import: { rootCertPem, rootKeyPem: await readFile(ik, 'utf8') },
      })
        .start()
        .then(
          () => undefined,
          (e: Error) => e,
        );
      assert.match(String(err?.message), /--ca-key does not belong to --ca-cert/);
      assert.ok(!String(err?.message).includes('PRIVATE'));
    } finally {
      await s3.close();
    }
  } finally {
    await s.close();
    await s2.close();
    await d.close();
  }
});

test('POST /v1/identity/certificate: a join token gets a 24 h SPIFFE certificate that openssl verifies against the bundle', async () => {
  const t = await startCp({ identity: {} });
  const d = await tempDir();
  try {
    const tok = await call(t.url, 'POST', '/v1/identity/tokens', {
      namespace: 'shop',
      serviceAccount: 'web',
      ttl: '1h',
    });
    assert.equal(tok.status, 201);
    assert.match(tok.body.token, /^hxjt\.[0-9a-f]{16}\./);
    // Stored hashed: the secret is nowhere in the store.
    const secret = tok.body.token.split('.')[2];
    const all = await t.store.range('/hexmesh/');
    assert.ok(!all.kvs.some((kv) => kv.value.includes(secret)));

    const kc = await createKeyAndCsr({ spiffeId: ID('shop', 'web') });
    const r = await call(t.url, 'POST', '/v1/identity/certificate', {
      csr: kc.csrPem,
      token: tok.body.token,
      proxyId: 'web-1',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.spiffeId, ID('shop', 'web'));
    const life = Date.parse(r.body.notAfter) - Date.now();
    assert.ok(life > 23.9 * 3_600_000 && life <= 24 * 3_600_000, `24 h (${life})`);
    const bundle = await fetch(`${t.url}/v1/identity/bundle`);
    assert.equal(bundle.headers.get('content-type'), 'application/x-pem-file');
    const bundlePem = await bundle.text();
    const v = await opensslVerify(d.dir, bundlePem, r.body.certChainPem);
    assert.ok(v.ok, v.out);
    assert.match(v.out, /OK/);
    const { writeFile } = await import('node:fs/promises');
    const leafFile = join(d.dir, 'leaf.pem');
    await writeFile(leafFile, r.body.certChainPem);
    const text = (await openssl(['x509', '-in', leafFile, '-noout', '-text'])).out;
    assert.match(text, /URI:spiffe:\/\/hexmesh\.local\/ns\/shop\/sa\/web/);
    assert.match(text, /CA:FALSE/);
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.ok(!/DNS:/.test(text));
    // The key matches the certificate (the proxy keeps it; the server never saw it).
    const pubKey = (await openssl(['x509', '-in', leafFile, '-noout', '-pubkey'])).out;
    await writeFile(join(d.dir, 'k.pem'), kc.keyPem);
    assert.equal((await openssl(['pkey', '-in', join(d.dir, 'k.pem'), '-pubout'])).out, pubKey);
    // A CSR without a URI SAN gets the token's identity.
    const bare = await call(t.url, 'POST', '/v1/identity/certificate', {
      csr: (await createKeyAndCsr()).csrPem,
      token: tok.body.token,
    });
    assert.equal(bare.status, 200);
    assert.deepEqual(certInfo(bare.body.certChainPem).uris, [ID('shop', 'web')]);
    // Tracked per proxy id.
    const issued = await call(t.url, 'GET', '/v1/identity/certificates');
    assert.ok(
      issued.body.some(
        (x: { proxyId: string; serial: string }) => x.proxyId === 'web-1' && x.serial === r.body.serial,
      ),
    );
    // JSON bundle.
    const jb = await call(t.url, 'GET', '/v1/identity/bundle?format=json');
    assert.equal(jb.body.trustDomain, TD);
    assert.equal(jb.body.roots.join(''), bundlePem);
  } finally {
    await t.close();
    await d.close();
  }
});

test('refused: no proof, wrong token, token for another SA, another SPIFFE ID, extra DNS SAN, CA:true, expired token, bad CSR', async () => {
  let clock = Date.now();
  const t = await startCp({ identity: {}, now: () => clock });
  try {
    const mk = async (sa: string, ttl = '1h') =>
      (await call(t.url, 'POST', '/v1/identity/tokens', { namespace: 'shop', serviceAccount: sa, ttl })).body
        .token as string;
    const web = await mk('web');
    const db = await mk('db');
    const sign = (csr: string, token?: string) =>
      call(t.url, 'POST', '/v1/identity/certificate', token === undefined ? { csr } : { csr, token });
    const own = (await createKeyAndCsr({ spiffeId: ID('shop', 'web') })).csrPem;

    const none = await sign(own);
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'HEXMESH_ERR_UNAUTHENTICATED');

    const wrongSecret = web.slice(0, -4) + (web.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const wrong = await sign(own, wrongSecret);
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error.message, /wrong secret/);
    assert.ok(!wrong.body.error.message.includes(wrongSecret.split('.')[2]), 'the secret is not echoed');
    assert.equal((await sign(own, 'hxjt.0123456789abcdef.nope')).status, 401);
    assert.equal((await sign(own, 'garbage')).status, 401);

    // The db token cannot get the web identity: 403 naming both.
    const other = await sign(own, db);
    assert.equal(other.status, 403);
    assert.equal(other.body.error.code, 'HEXMESH_ERR_DENIED');
    assert.match(
      other.body.error.message,
      /asks for spiffe:\/\/hexmesh\.local\/ns\/shop\/sa\/web but the join token grants spiffe:\/\/hexmesh\.local\/ns\/shop\/sa\/db/,
    );

    const otherNs = await sign((await createKeyAndCsr({ spiffeId: ID('admin', 'web') })).csrPem, web);
    assert.equal(otherNs.status, 403);
    const otherTd = await sign(
      (await createKeyAndCsr({ spiffeId: 'spiffe://evil.example/ns/shop/sa/web' })).csrPem,
      web,
    );
    assert.equal(otherTd.status, 403);

    const dns = await sign(
      (
        await createKeyAndCsr({
          spiffeId: ID('shop', 'web'),
          extraNames: [{ type: 'dns', value: 'bank.example.com' }],
        })
      ).csrPem,
      web,
    );
    assert.equal(dns.status, 400);
    assert.match(dns.body.error.message, /DNS name "bank\.example\.com"/);
    const ip = await sign(
      (await createKeyAndCsr({ extraNames: [{ type: 'ip', value: '10.0.0.1' }] })).csrPem,
      web,
    );
    assert.equal(ip.status, 400);
    const two = await sign(
      (
        await createKeyAndCsr({
          spiffeId: ID('shop', 'web'),
          extraNames: [{ type: 'url', value: ID('shop', 'db') }],
        })
      ).csrPem,
      web,
    );
    assert.equal(two.status, 400);

    const caReq = await sign(
      (
        await createKeyAndCsr({
          spiffeId: ID('shop', 'web'),
          extraExtensions: [new x509.BasicConstraintsExtension(true, 0, true)],
        })
      ).csrPem,
      web,
    );
    assert.equal(caReq.status, 400);
    assert.match(caReq.body.error.message, /CA:true/);

    assert.equal((await sign('not a csr', web)).status, 400);
    // A CSR whose signature does not match (tampered): refused.
    const good = (await createKeyAndCsr()).csrPem;
    const der = Buffer.from(x509.PemConverter.decode(good)[0]);
    der[der.length - 5] ^= 0x01;
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    assert.equal((await sign(tampered, web)).status, 400);

    // Still fine before expiry...
    assert.equal((await sign(own, web)).status, 200);
    // ...and refused after.
    clock += 3_600_001;
    const expired = await sign(own, web);
    assert.equal(expired.status, 401);
    assert.match(expired.body.error.message, /expired/);
    // Revoked tokens are gone.
    const fresh = await mk('web');
    const id = fresh.split('.')[1];
    assert.equal((await call(t.url, 'DELETE', `/v1/identity/tokens/${id}`)).status, 200);
    assert.equal((await sign(own, fresh)).status, 401);
    // Token listing shows no secret and no hash.
    const list = await call(t.url, 'GET', '/v1/identity/tokens');
    assert.ok(list.body.length >= 2);
    assert.ok(!JSON.stringify(list.body).includes('hash'));
    // Bad token requests.
    assert.equal(
      (await call(t.url, 'POST', '/v1/identity/tokens', { namespace: 'Shop!', serviceAccount: 'web' }))
        .status,
      400,
    );
    assert.equal(
      (
        await call(t.url, 'POST', '/v1/identity/tokens', {
          namespace: 'shop',
          serviceAccount: 'web',
          ttl: 'soon',
        })
      ).status,
      400,
    );
  } finally {
    await t.close();
  }
});

test('renewal with the current certificate (no token): same identity only; a certificate from another CA is refused', async () => {
  const t = await startCp({ identity: {} });
  const other = await tempStore();
  try {
    const tok = (
      await call(t.url, 'POST', '/v1/identity/tokens', { namespace: 'shop', serviceAccount: 'web' })
    ).body.token;
    const first = await createKeyAndCsr();
    const cert = (await call(t.url, 'POST', '/v1/identity/certificate', { csr: first.csrPem, token: tok }))
      .body;
    const { renewalSignature } = await import('../../src/identity/csr.ts');
    const next = await createKeyAndCsr({ spiffeId: ID('shop', 'web') });
    const renew = (csr: string, certificate: string, key: string) =>
      call(t.url, 'POST', '/v1/identity/certificate', {
        csr,
        renewal: { certificate, signature: renewalSignature(key, csr) },
      });
    const ok = await renew(next.csrPem, cert.certChainPem, first.keyPem);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(certInfo(ok.body.certChainPem).uris, [ID('shop', 'web')]);
    // Asking for another identity on renewal: 403.
    const evil = await createKeyAndCsr({ spiffeId: ID('shop', 'db') });
    assert.equal((await renew(evil.csrPem, cert.certChainPem, first.keyPem)).status, 403);
    // Signature by a key that is not the certificate's: 401.
    assert.equal((await renew(next.csrPem, cert.certChainPem, next.keyPem)).status, 401);
    // A certificate from another CA: 401.
    const foreign = new CertificateAuthority(other.store);
    const ft = await foreign.tokens.create('shop', 'web', 3_600_000);
    const fk = await createKeyAndCsr();
    const fc = await foreign.sign({ csr: fk.csrPem, token: ft.token });
    assert.equal((await renew(next.csrPem, fc.certChainPem, fk.keyPem)).status, 401);
  } finally {
    await t.close();
    await other.close();
  }
});
