/**
 * An identity from PEM the operator (or a test) provides: a certificate chain, its key and
 * the trust bundle. `update()` swaps them (e.g. after the files were re-written).
 */
import { readFile } from 'node:fs/promises';
import { createPrivateKey } from 'node:crypto';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { IdentitySource, WorkloadCertificate } from './identity-source.ts';
import { parseCert, splitPemCerts } from './cert-parse.ts';

export interface StaticIdentity {
  /** Leaf first, then intermediates. */
  certChainPem: string;
  keyPem: string;
  trustBundlePem: string;
}

/** Parse and check a chain + key into a WorkloadCertificate (the key must belong to the leaf). */
export function workloadCertificate(certChainPem: string, keyPem: string): WorkloadCertificate {
  const certs = splitPemCerts(certChainPem);
  if (!certs.length) throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', 'no PEM certificate in the chain');
  const leaf = parseCert(certs[0]);
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    // Never echo the key text.
    throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', 'the workload key is not a readable private key');
  }
  if (!leaf.checkPrivateKey(key))
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      'the workload key does not belong to the certificate',
    );
  const uri = (leaf.subjectAltName ?? '').split(', ').find((p) => p.startsWith('URI:spiffe://'));
  if (!uri)
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      'the workload certificate has no SPIFFE ID (URI SAN)',
    );
  return Object.freeze({
    certChainPem: certs.join(''),
    keyPem,
    spiffeId: uri.slice(4),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
  });
}

export class StaticIdentitySource implements IdentitySource {
  #cert: WorkloadCertificate;
  #bundle: string;
  readonly #listeners = new Set<() => void>();

  constructor(identity: StaticIdentity) {
    this.#cert = workloadCertificate(identity.certChainPem, identity.keyPem);
    this.#bundle = checkedBundle(identity.trustBundlePem);
  }

  /** From files: `--cert`, `--key`, `--trust-bundle`. */
  static async fromFiles(files: {
    cert: string;
    key: string;
    bundle: string;
  }): Promise<StaticIdentitySource> {
    const [certChainPem, keyPem, trustBundlePem] = await Promise.all(
      [files.cert, files.key, files.bundle].map((f) => readFile(f, 'utf8')),
    );
    return new StaticIdentitySource({ certChainPem, keyPem, trustBundlePem });
  }

  current(): WorkloadCertificate {
    return this.#cert;
  }

  trustBundlePem(): string {
    return this.#bundle;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Replace the identity (checked first: a bad one throws and the current one stays). */
  update(identity: Partial<StaticIdentity>): void {
    const cert =
      identity.certChainPem !== undefined || identity.keyPem !== undefined
        ? workloadCertificate(
            identity.certChainPem ?? this.#cert.certChainPem,
            identity.keyPem ?? this.#cert.keyPem,
          )
        : this.#cert;
    const bundle =
      identity.trustBundlePem !== undefined ? checkedBundle(identity.trustBundlePem) : this.#bundle;
    this.#cert = cert;
    this.#bundle = bundle;
    for (const l of [...this.#listeners]) l();
  }
}

function checkedBundle(pem: string): string {
  const certs = splitPemCerts(pem);
  if (!certs.length)
    throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', 'no PEM certificate in the trust bundle');
  for (const c of certs) parseCert(c);
  return certs.join('');
}
