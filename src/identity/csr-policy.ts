/**
 * What a workload may ask for in a CSR: its own SPIFFE ID (or nothing, and it gets the
 * identity its proof grants), an ECDSA P-256 key, nothing else. Any other SAN (DNS, IP,
 * e-mail, another URI), or CA:true, is refused: the CA decides every extension itself.
 */
import { createPublicKey } from 'node:crypto';
import * as x509 from './x509-lib.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';

const SAN_OID = '2.5.29.17';
const BASIC_CONSTRAINTS_OID = '2.5.29.19';
const EXTENSION_REQUEST_OID = '1.2.840.113549.1.9.14';

export interface CheckedCsr {
  readonly publicKey: x509.PublicKey;
  /** The URI SAN the CSR asks for, if any. */
  readonly requestedId: string | undefined;
  /** The DER of the request checked here: what a renewal's signature must cover. */
  readonly der: Buffer;
}

const bad = (message: string) => new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `CSR refused: ${message}`);

/** Parse and check a PEM CSR (signature, key type, requested extensions). */
export async function checkCsr(pem: string): Promise<CheckedCsr> {
  // Exactly one PEM block: the library would also take base64 or hex, or the first of
  // several blocks, and a renewal's proof must cover the very bytes that are checked here.
  let csr: x509.Pkcs10CertificateRequest;
  try {
    const blocks = x509.PemConverter.decodeWithHeaders(pem);
    if (blocks.length !== 1 || blocks[0].type !== 'CERTIFICATE REQUEST')
      throw new Error(
        blocks.length > 1
          ? `${blocks.length} PEM blocks`
          : blocks.length
            ? `a ${blocks[0].type} PEM block`
            : 'no PEM block',
      );
    csr = new x509.Pkcs10CertificateRequest(blocks[0].rawData);
  } catch (e) {
    throw bad(`not a PEM PKCS#10 certificate request (${(e as Error).message})`);
  }
  // The key first: a curve WebCrypto does not know (P-192, secp256k1) cannot be verified,
  // and "its signature does not verify" would hide that the key itself is refused.
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256')
    throw bad(`key must be ECDSA P-256 (got ${describeKey(csr.publicKey)})`);
  let ok: boolean;
  try {
    ok = await csr.verify();
  } catch {
    ok = false; // an unparseable signature is a wrong one
  }
  if (!ok) throw bad('its signature does not verify (the request must be signed by the key it carries)');
  // The library decodes every attribute and extension it knows when they are first read: one
  // that does not match its schema throws there: the request's fault (400), not a 500.
  let attributes: x509.Attribute[];
  let extensions: x509.Extension[];
  try {
    attributes = csr.attributes;
    extensions = csr.extensions;
  } catch (e) {
    throw bad(`its attributes or extensions are malformed (${(e as Error).message})`);
  }
  for (const attr of attributes)
    if (attr.type !== EXTENSION_REQUEST_OID) throw bad(`unexpected attribute ${attr.type}`);
  let requestedId: string | undefined;
  for (const ext of extensions) {
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
  return { publicKey: csr.publicKey, requestedId, der: Buffer.from(csr.rawData) };
}

/** `RSA 1024-bit`, `EC prime192v1`: what a refused key is, as openssl names it. */
function describeKey(key: x509.PublicKey): string {
  try {
    const k = createPublicKey({ key: Buffer.from(key.rawData), format: 'der', type: 'spki' });
    const d = k.asymmetricKeyDetails;
    if (d?.modulusLength) return `${k.asymmetricKeyType?.toUpperCase()} ${d.modulusLength}-bit`;
    if (d?.namedCurve) return `EC ${d.namedCurve}`;
    if (k.asymmetricKeyType) return k.asymmetricKeyType;
  } catch {
    // A key node cannot read either: name its algorithm as the request does.
  }
  return key.algorithm.name;
}
