/**
 * What a workload may ask for in a CSR: its own SPIFFE ID (or nothing, and it gets the
 * identity its proof grants), an ECDSA P-256 key, nothing else. Any other SAN (DNS, IP,
 * e-mail, another URI), or CA:true, is refused: the CA decides every extension itself.
 */
import * as x509 from './x509-lib.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';

const SAN_OID = '2.5.29.17';
const BASIC_CONSTRAINTS_OID = '2.5.29.19';
const EXTENSION_REQUEST_OID = '1.2.840.113549.1.9.14';

export interface CheckedCsr {
  readonly publicKey: x509.PublicKey;
  /** The URI SAN the CSR asks for, if any. */
  readonly requestedId: string | undefined;
}

const bad = (message: string) => new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `CSR refused: ${message}`);

/** Parse and check a PEM CSR (signature, key type, requested extensions). */
export async function checkCsr(pem: string): Promise<CheckedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw bad(`not a PEM PKCS#10 certificate request (${(e as Error).message})`);
  }
  let ok: boolean;
  try {
    ok = await csr.verify();
  } catch {
    ok = false; // an unparseable signature is a wrong one
  }
  if (!ok) throw bad('its signature does not verify (the request must be signed by the key it carries)');
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256')
    throw bad(`key must be ECDSA P-256 (got ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''})`);
  for (const attr of csr.attributes)
    if (attr.type !== EXTENSION_REQUEST_OID) throw bad(`unexpected attribute ${attr.type}`);
  let requestedId: string | undefined;
  for (const ext of csr.extensions) {
    if (ext.type === SAN_OID) {
      const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
      for (const n of san.names.items) {
        if (n.type !== 'url')
          throw bad(
            `it asks for ${n.type === 'dns' ? 'DNS name' : n.type} ${JSON.stringify(n.value)}: workload certificates carry only the SPIFFE ID`,
          );
        if (requestedId !== undefined) throw bad('it asks for more than one URI SAN');
        requestedId = n.value;
      }
    } else if (ext.type === BASIC_CONSTRAINTS_OID) {
      if (new x509.BasicConstraintsExtension(ext.rawData).ca)
        throw bad('it asks for CA:true; workloads get leaf certificates only');
    }
    // Other requested extensions (key usage...) are ignored: the CA sets its own profile.
  }
  return { publicKey: csr.publicKey, requestedId };
}
