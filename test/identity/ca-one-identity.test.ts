/**
 * Issue 10: a certificate names one identity. The CA refuses a CSR or a renewal carrying
 * more than one URI SAN (a renewal with [admin, web] used to be issued for admin), and the
 * API refuses such a client certificate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import * as x509 from '../../src/identity/x509-lib.ts';
import { CertificateAuthority } from '../../src/identity/ca.ts';
import { createKeyAndCsr, renewalSignature } from '../../src/identity/csr.ts';
import { uriSans } from '../../src/identity/identity-source.ts';
import {
  createIntermediateCert,
  createRootCert,
  exportKeyPem,
  generateKeyPair,
  randomSerial,
  withNewline,
} from '../../src/identity/x509.ts';
import { tempStore } from '../control/helpers.ts';
import { ControlPlane } from '../../src/control/control-plane.ts';
import { controlRequest } from '../../src/identity/control-tls.ts';

const HOUR = 3_600_000;
const ID = (sa: string) => `spiffe://hexmesh.local/ns/default/sa/${sa}`;

/** An operator's root + intermediate, and a way to mint any leaf with the intermediate's key. */
async function operatorPki() {
  const now = Date.now();
  const rootKeys = await generateKeyPair(true);
  const rootCertPem = await createRootCert({
    commonName: 'op root',
    trustDomain: 'hexmesh.local',
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 24 * HOUR),
    keys: rootKeys,
  });
  const intKeys = await generateKeyPair(true);
  const intermediateCertPem = await createIntermediateCert(
    {
      commonName: 'op intermediate',
      trustDomain: 'hexmesh.local',
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 24 * HOUR),
      keys: intKeys,
    },
    { certPem: rootCertPem, key: rootKeys.privateKey },
  );
  /** A leaf carrying every URI in `uris`, as a CA that is not hexmesh's might issue. */
  const leaf = async (uris: string[]) => {
    const keys = await generateKeyPair(true);
    const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey as webcrypto.CryptoKey);
    const publicKey = new x509.PublicKey(spki);
    const issuer = new x509.X509Certificate(intermediateCertPem);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: 'O=hexmesh',
      issuer: issuer.subject,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + HOUR),
      publicKey,
      signingKey: intKeys.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.SubjectAlternativeNameExtension(
          uris.map((value) => ({ type: 'url' as const, value })),
          true,
        ),
        await x509.AuthorityKeyIdentifierExtension.create(issuer),
      ],
    });
    return {
      certPem: withNewline(cert.toString('pem')) + intermediateCertPem,
      keyPem: await exportKeyPem(keys.privateKey),
    };
  };
  return {
    import: {
      rootCertPem,
      rootKeyPem: await exportKeyPem(rootKeys.privateKey),
      intermediateCertPem,
      intermediateKeyPem: await exportKeyPem(intKeys.privateKey),
    },
    leaf,
  };
}

test('issue 10: a renewal whose certificate carries [admin, web] is refused (it was issued for admin)', async () => {
  const s = await tempStore();
  try {
    const pki = await operatorPki();
    const ca = new CertificateAuthority(s.store, { import: pki.import });
    await ca.start();
    const two = await pki.leaf([ID('admin'), ID('web')]);
    const next = await createKeyAndCsr();
    await assert.rejects(
      ca.sign({
        csr: next.csrPem,
        renewal: { certificate: two.certPem, signature: renewalSignature(two.keyPem, next.csrPem) },
      }),
      (e: Error & { code?: string }) =>
        e.code === 'HEXMESH_ERR_BAD_REQUEST' && /carries 2 URI SANs/.test(e.message),
    );
    // The same CA renews a one-identity certificate of that intermediate (the test is not vacuous).
    const one = await pki.leaf([ID('web')]);
    const ok = await ca.sign({
      csr: next.csrPem,
      renewal: { certificate: one.certPem, signature: renewalSignature(one.keyPem, next.csrPem) },
    });
    assert.equal(ok.spiffeId, ID('web'));
  } finally {
    await s.close();
  }
});

test('issue 10: a CSR asking for two URI SANs is refused, whatever the proof', async () => {
  const s = await tempStore();
  try {
    const ca = new CertificateAuthority(s.store);
    const { token } = await ca.tokens.create('default', 'web', 60_000);
    const csr = await createKeyAndCsr({
      spiffeId: ID('web'),
      extraNames: [{ type: 'url', value: ID('admin') }],
    });
    await assert.rejects(
      ca.sign({ csr: csr.csrPem, token }),
      (e: Error & { code?: string }) =>
        e.code === 'HEXMESH_ERR_BAD_REQUEST' && /more than one URI SAN/.test(e.message),
    );
  } finally {
    await s.close();
  }
});

test('issue 10: a client certificate carrying two URI SANs does not authenticate to the API as either', async () => {
  const s = await tempStore();
  const pki = await operatorPki();
  const cp = new ControlPlane({
    listen: { address: '127.0.0.1', port: 0 },
    store: s.store,
    auth: { mode: 'enforce' },
    identity: { import: pki.import },
    tls: { fromCa: true },
  });
  try {
    const { port } = await cp.start();
    const url = `https://127.0.0.1:${port}/v1/auth/whoami`;
    const ca = (await cp.identity.bundle()).pem;
    const whoami = async (leaf: { certPem: string; keyPem: string }) => {
      const r = await controlRequest(
        url,
        { signal: AbortSignal.timeout(10_000) },
        { ca, cert: leaf.certPem, key: leaf.keyPem },
      );
      return {
        status: r.status,
        json: JSON.parse(r.body) as { spiffeId?: string; error?: { message: string } },
      };
    };
    const one = await whoami(await pki.leaf([ID('web')]));
    assert.equal(one.json.spiffeId, ID('web'), 'a one-identity certificate authenticates');
    const two = await whoami(await pki.leaf([ID('admin'), ID('web')]));
    assert.equal(two.status, 401);
    assert.match(two.json.error!.message, /carries 2 URI SANs/);
  } finally {
    await cp.close();
    await s.close();
  }
});

test('uriSans reads every URI SAN, quoted ones included', () => {
  assert.deepEqual(uriSans(`URI:${ID('a')}, DNS:x, URI:${ID('b')}`), [ID('a'), ID('b')]);
  assert.deepEqual(uriSans(`URI:"spiffe://t/ns/a/sa/b, URI:spiffe://t/ns/a/sa/c"`), [
    'spiffe://t/ns/a/sa/b, URI:spiffe://t/ns/a/sa/c',
  ]);
  assert.deepEqual(uriSans(undefined), []);
});
