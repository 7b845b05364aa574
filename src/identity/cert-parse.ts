/**
 * Reading certificates with node:crypto alone (no @peculiar/x509: a sidecar with static
 * certificates reads its chain and trust bundle without loading it; issue 11). Building and
 * signing certificates is in x509.ts.
 */
import { X509Certificate as NodeCert } from 'node:crypto';
import { HexmeshError } from '../errors/hexmesh-error.ts';

/** Split concatenated PEM certificates. */
export function splitPemCerts(pem: string): string[] {
  return (
    pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? []
  );
}

/** What hexmesh reads from a certificate. */
export interface CertInfo {
  readonly subject: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly isCa: boolean;
  /** URI SANs. */
  readonly uris: readonly string[];
  readonly fingerprint256: string;
}

/** Parse one PEM certificate (the first of a chain). */
export function certInfo(pem: string): CertInfo {
  const c = parseCert(pem);
  const uris: string[] = [];
  for (const part of (c.subjectAltName ?? '').split(', '))
    if (part.startsWith('URI:')) uris.push(part.slice(4));
  return {
    subject: c.subject.replace(/\n/g, ', '),
    serial: c.serialNumber.toLowerCase(),
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    isCa: c.ca,
    uris,
    fingerprint256: c.fingerprint256,
  };
}

export function parseCert(pem: string): NodeCert {
  try {
    return new NodeCert(pem);
  } catch (e) {
    throw new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `not a PEM certificate: ${(e as Error).message}`);
  }
}

/** True if `child` was issued and signed by `issuer`. */
export function isSignedBy(child: NodeCert, issuer: NodeCert): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}
