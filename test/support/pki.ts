/**
 * Test PKI: throwaway CAs (root + intermediate) issuing SPIFFE workload certificates, with
 * the same generators the control plane's CA uses (src/identity/x509.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import * as x509 from '../../src/identity/x509-lib.ts';
import {
  createIntermediateCert,
  createLeafCert,
  createRootCert,
  exportKeyPem,
  generateKeyPair,
  randomSerial,
  signingAlgorithm,
  type KeyPair,
} from '../../src/identity/x509.ts';

const HOUR = 3_600_000;

export interface IssuedCert {
  /** Leaf then intermediate. */
  certChainPem: string;
  keyPem: string;
  spiffeId: string;
}

export class TestCa {
  readonly trustDomain: string;
  readonly rootPem: string;
  readonly #intermediatePem: string;
  readonly #intermediateKeys: KeyPair;

  private constructor(trustDomain: string, rootPem: string, intermediatePem: string, keys: KeyPair) {
    this.trustDomain = trustDomain;
    this.rootPem = rootPem;
    this.#intermediatePem = intermediatePem;
    this.#intermediateKeys = keys;
  }

  static async create(trustDomain = 'hexmesh.test', name = 'test'): Promise<TestCa> {
    const now = Date.now();
    const rootKeys = await generateKeyPair(true);
    const rootPem = await createRootCert({
      commonName: `${name} root`,
      trustDomain,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 24 * HOUR),
      keys: rootKeys,
    });
    const intKeys = await generateKeyPair(true);
    const intPem = await createIntermediateCert(
      {
        commonName: `${name} intermediate`,
        trustDomain,
        notBefore: new Date(now - HOUR),
        notAfter: new Date(now + 24 * HOUR),
        keys: intKeys,
      },
      { certPem: rootPem, key: rootKeys.privateKey },
    );
    return new TestCa(trustDomain, rootPem, intPem, intKeys);
  }

  /** `spiffe://<td>/ns/<ns>/sa/<sa>` of this CA's trust domain. */
  id(namespace: string, serviceAccount: string): string {
    return `spiffe://${this.trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  }

  /**
   * A certificate with these URI SANs (no other SAN), as a sloppy or hostile issuer might
   * sign: several SPIFFE IDs, or none. Leaf then intermediate, like `issue`.
   */
  async issueWithUris(uris: string[]): Promise<IssuedCert> {
    const keys = await generateKeyPair(true);
    const now = Date.now();
    const issuer = new x509.X509Certificate(this.#intermediatePem);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: 'O=hexmesh',
      issuer: issuer.subject,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 24 * HOUR),
      publicKey: keys.publicKey,
      signingKey: this.#intermediateKeys.privateKey,
      signingAlgorithm: signingAlgorithm(this.#intermediateKeys.privateKey),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        new x509.SubjectAlternativeNameExtension(
          uris.map((value) => ({ type: 'url' as const, value })),
          true,
        ),
        await x509.AuthorityKeyIdentifierExtension.create(issuer),
      ],
    });
    return {
      certChainPem: `${leaf.toString('pem')}\n${this.#intermediatePem}`,
      keyPem: await exportKeyPem(keys.privateKey),
      spiffeId: uris[0] ?? '',
    };
  }

  /** A workload certificate for `spiffeId` (default: valid from an hour ago for a day). */
  async issue(spiffeId: string, validity?: { notBefore: Date; notAfter: Date }): Promise<IssuedCert> {
    const keys = await generateKeyPair(true);
    const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey as webcrypto.CryptoKey);
    const now = Date.now();
    const leaf = await createLeafCert(
      {
        spiffeId,
        publicKey: new x509.PublicKey(spki),
        serial: randomSerial(),
        notBefore: validity?.notBefore ?? new Date(now - HOUR),
        notAfter: validity?.notAfter ?? new Date(now + 24 * HOUR),
      },
      { certPem: this.#intermediatePem, key: this.#intermediateKeys.privateKey },
    );
    return {
      certChainPem: leaf + this.#intermediatePem,
      keyPem: await exportKeyPem(keys.privateKey),
      spiffeId,
    };
  }
}

/** A temp directory for PEM files, removed by `close()`. */
export class PemDir {
  readonly path = mkdtempSync(join(tmpdir(), 'hexmesh-pki-'));

  write(name: string, pem: string): string {
    const f = join(this.path, name);
    writeFileSync(f, pem, { mode: 0o600 });
    return f;
  }

  /** cert/key/bundle files for `proxy.tls` (or curl/openssl). */
  identityFiles(
    prefix: string,
    cert: IssuedCert,
    bundlePem: string,
  ): { certFile: string; keyFile: string; bundleFile: string } {
    return {
      certFile: this.write(`${prefix}.crt`, cert.certChainPem),
      keyFile: this.write(`${prefix}.key`, cert.keyPem),
      bundleFile: this.write(`${prefix}-bundle.pem`, bundlePem),
    };
  }

  close(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}
