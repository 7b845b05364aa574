/**
 * Throw-away PKI for the mutual-TLS variant of the benchmark: one CA, a server
 * certificate for `upstream` and a client certificate for `bench-client`, ECDSA P-256,
 * made with the openssl command line in a temporary directory.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BenchCerts {
  /** CA certificate (PEM file path). */
  caCert: string;
  /** Server certificate + key in one PEM file (the form HAProxy's `crt` takes). */
  serverPem: string;
  /** Client certificate + key in one PEM file. */
  clientPem: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** SPIFFE IDs of the bench workloads (hexmesh mTLS checks the server's). */
export const BENCH_SPIFFE = {
  upstream: 'spiffe://hexmesh.bench/ns/default/sa/upstream',
  client: 'spiffe://hexmesh.bench/ns/default/sa/bench-client',
} as const;

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

function issue(
  dir: string,
  name: string,
  cn: string,
  san: string,
  ca: { cert: string; key: string },
): { cert: string; key: string; pem: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr]);
  writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-days',
    '2',
    '-sha256',
    '-extfile',
    ext,
    '-out',
    cert,
  ]);
  const pem = join(dir, `${name}.pem`);
  writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  return { cert, key, pem };
}

/** Create the CA and both leaf certificates in `dir`. */
export function makeCerts(dir: string): BenchCerts {
  const ca = { key: join(dir, 'ca.key'), cert: join(dir, 'ca.crt') };
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', ca.key]);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    ca.key,
    '-subj',
    '/CN=hexmesh bench CA',
    '-days',
    '2',
    '-sha256',
    '-out',
    ca.cert,
  ]);
  // The SPIFFE URI SANs make the same certificates hexmesh workload identities (proxy.tls).
  const server = issue(dir, 'server', 'upstream', `DNS:upstream,URI:${BENCH_SPIFFE.upstream}`, ca);
  const client = issue(dir, 'client', 'bench-client', `DNS:bench-client,URI:${BENCH_SPIFFE.client}`, ca);
  return {
    caCert: ca.cert,
    serverPem: server.pem,
    clientPem: client.pem,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
  };
}
