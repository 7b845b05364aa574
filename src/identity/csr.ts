/**
 * The workload side of signing: a fresh ECDSA P-256 key (it never leaves the process) and
 * a CSR for it, plus the renewal proof (the current key's signature over the new CSR).
 */
import { createPrivateKey, sign } from 'node:crypto';
import * as x509 from './x509-lib.ts';
import { exportKeyPem, generateKeyPair, withNewline } from './x509.ts';

export interface CsrOptions {
  /** The SPIFFE ID to ask for; none: the CA grants the identity the proof carries. */
  spiffeId?: string;
  /** Further SANs and extensions (tests use them to ask for what must be refused). */
  extraNames?: x509.JsonGeneralNames;
  extraExtensions?: x509.Extension[];
}

export interface KeyAndCsr {
  readonly keyPem: string;
  readonly csrPem: string;
}

export async function createKeyAndCsr(opts: CsrOptions = {}): Promise<KeyAndCsr> {
  // Extractable only so that TLS (which takes PEM) can use it; it is never sent anywhere.
  const keys = await generateKeyPair(true);
  const names: x509.JsonGeneralNames = [
    ...(opts.spiffeId ? [{ type: 'url' as const, value: opts.spiffeId }] : []),
    ...(opts.extraNames ?? []),
  ];
  const extensions: x509.Extension[] = [
    ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ...(opts.extraExtensions ?? []),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
    extensions,
  });
  return { keyPem: await exportKeyPem(keys.privateKey), csrPem: withNewline(csr.toString('pem')) };
}

/** Renewal proof: the current key signs the new CSR's DER (SHA-256), base64. */
export function renewalSignature(currentKeyPem: string, csrPem: string): string {
  const der = Buffer.from(x509.PemConverter.decode(csrPem)[0]);
  return sign('sha256', der, createPrivateKey(currentKeyPem)).toString('base64');
}
