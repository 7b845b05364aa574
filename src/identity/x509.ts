/**
 * Certificate building blocks for the CA: key pairs (ECDSA P-256 through WebCrypto, as
 * @peculiar/x509 signs with CryptoKeys), PEM import/export, and the three certificate
 * profiles (root, intermediate, workload leaf). Parsing and verification use node:crypto's
 * X509Certificate; building uses @peculiar/x509 (URI SANs and extensions node cannot write).
 */
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from './x509-lib.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';

const subtle = webcrypto.subtle;
const EC_P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

export interface KeyPair {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/** A fresh ECDSA P-256 key pair; extractable only where it must be stored (CA keys). */
export async function generateKeyPair(extractable: boolean): Promise<KeyPair> {
  return (await subtle.generateKey(EC_P256, extractable, ['sign', 'verify'])) as KeyPair;
}

/** PKCS#8 PEM of a private key. */
export async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return withNewline(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

/** Signing parameters for a key (ECDSA with the curve's hash, or RSA PKCS#1 v1.5 SHA-256). */
export function signingAlgorithm(key: CryptoKey): Algorithm | EcdsaParams {
  if (key.algorithm.name === 'ECDSA') {
    const curve = (key.algorithm as EcKeyAlgorithm).namedCurve;
    return { name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : curve === 'P-521' ? 'SHA-512' : 'SHA-256' };
  }
  return { name: 'RSASSA-PKCS1-v1_5' };
}

/**
 * Import a private key PEM (PKCS#8, SEC1 `EC PRIVATE KEY` or PKCS#1 RSA, as operators'
 * PKIs write them) as a signing CryptoKey. The message never includes the key.
 */
export async function importPrivateKey(pem: string, what: string): Promise<CryptoKey> {
  let ko;
  try {
    ko = createPrivateKey(pem);
  } catch (e) {
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      `${what}: not a readable private key (${(e as { code?: string }).code ?? 'parse error'})`,
    );
  }
  const der = ko.export({ type: 'pkcs8', format: 'der' });
  const d = ko.asymmetricKeyDetails;
  if (ko.asymmetricKeyType === 'ec' && d?.namedCurve) {
    const curve = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }[d.namedCurve];
    if (!curve)
      throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', `${what}: unsupported curve ${d.namedCurve}`);
    return subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: curve }, true, ['sign']);
  }
  if (ko.asymmetricKeyType === 'rsa')
    return subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['sign']);
  throw new HexmeshError(
    'HEXMESH_ERR_CONFIG_INVALID',
    `${what}: unsupported key type ${ko.asymmetricKeyType} (use ECDSA P-256/P-384 or RSA)`,
  );
}

/** A random positive 128-bit serial, hex (RFC 5280: at most 20 octets, positive). */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  b[0] |= 0x01; // no leading zero octet, so the hex is exactly what the certificate carries
  return b.toString('hex');
}

export interface CaCertParams {
  readonly commonName: string;
  readonly trustDomain: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly keys: KeyPair;
}

const CA_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

/** A self-signed root: CA:true, keyCertSign + cRLSign. */
export async function createRootCert(p: CaCertParams): Promise<string> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${p.commonName}, O=hexmesh, OU=${p.trustDomain}`,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    keys: p.keys,
    signingAlgorithm: signingAlgorithm(p.keys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(CA_USAGE, true),
      await x509.SubjectKeyIdentifierExtension.create(p.keys.publicKey),
    ],
  });
  return withNewline(cert.toString('pem'));
}

/** An intermediate signed by `issuer`: CA:true with path length 0 (it signs only leaves). */
export async function createIntermediateCert(
  p: CaCertParams,
  issuer: { certPem: string; key: CryptoKey },
): Promise<string> {
  const issuerCert = new x509.X509Certificate(issuer.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${p.commonName}, O=hexmesh, OU=${p.trustDomain}`,
    issuer: issuerCert.subject,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    publicKey: p.keys.publicKey,
    signingKey: issuer.key,
    signingAlgorithm: signingAlgorithm(issuer.key),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(CA_USAGE, true),
      await x509.SubjectKeyIdentifierExtension.create(p.keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuerCert),
    ],
  });
  return withNewline(cert.toString('pem'));
}

export interface LeafParams {
  readonly spiffeId: string;
  /** The one instance of the identity the certificate is bound to, as its subject CN. */
  readonly instance?: string;
  /** The id of the join token it descends from, as its subject `OU=join-token <id>` (renewals check it still stands). */
  readonly joinToken?: string;
  /**
   * Got with a platform token (a Kubernetes ServiceAccount token), as its subject
   * `OU=platform-token`: it renews with a fresh token only, which proves the Pod still stands.
   */
  readonly platformToken?: boolean;
  readonly publicKey: x509.PublicKey;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Extra SANs beside the SPIFFE ID, for a server that people reach by name (the control plane's own). */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

/**
 * A workload certificate: CA:false, digitalSignature, serverAuth + clientAuth, the SPIFFE
 * ID as its only SAN (critical, as the X.509-SVID spec asks when the subject says little).
 */
export async function createLeafCert(
  p: LeafParams,
  issuer: { certPem: string; key: CryptoKey },
): Promise<string> {
  const issuerCert = new x509.X509Certificate(issuer.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: p.serial,
    subject: [
      'O=hexmesh',
      ...(p.joinToken !== undefined ? [`OU=join-token ${p.joinToken}`] : []),
      ...(p.platformToken ? ['OU=platform-token'] : []),
      ...(p.instance !== undefined ? [`CN=${p.instance}`] : []),
    ].join(', '),
    issuer: issuerCert.subject,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    publicKey: p.publicKey,
    signingKey: issuer.key,
    signingAlgorithm: signingAlgorithm(issuer.key),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension(
        [
          { type: 'url', value: p.spiffeId },
          ...(p.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
          ...(p.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
        ],
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(p.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuerCert),
    ],
  });
  return withNewline(cert.toString('pem'));
}

/** PEM blocks end with a newline, so concatenated chains and bundles stay parseable. */
export function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

// Reading certificates needs node:crypto only; it lives apart so a proxy with static
// certificates does not load @peculiar/x509 (issue 11).
export { certInfo, isSignedBy, parseCert, splitPemCerts, type CertInfo } from './cert-parse.ts';
