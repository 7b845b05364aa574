/**
 * How a proxy talks to an HTTPS control plane (docs/api-security.md, "Transport"): it
 * verifies the control plane's server certificate against the mesh trust bundle (and the
 * operator's `--control-ca`, or the system roots without one, for a control plane serving an
 * operator's certificate), accepts the control plane's SPIFFE ID in place of the host name,
 * and presents its workload certificate as the TLS client certificate once it has one, so
 * its join token is needed for the first certificate only. Plain `http://` URLs get none of
 * this (the local loopback default).
 */
import http from 'node:http';
import https from 'node:https';
import tls, { type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { WorkloadCertificate } from './identity-source.ts';

/** Namespace and service account of the control plane's own identity. */
export const CONTROL_PLANE_NAMESPACE = 'hexmesh-system';
export const CONTROL_PLANE_SERVICE_ACCOUNT = 'control-plane';

/** What the TLS client needs to know, read at each connection (certificates renew). */
export interface ControlTlsState {
  /** The workload certificate to present, if any yet. */
  cert?: WorkloadCertificate;
  /** The mesh's trust bundle (PEM), once fetched. */
  bundlePem?: string;
  /** The mesh's trust domain, once known (from the certificate or the bundle). */
  trustDomain?: string;
  /** The operator's CA for the control plane's certificate (`--control-ca`). */
  caPem?: string;
}

/** `spiffe://<td>/ns/hexmesh-system/sa/control-plane`. */
export function controlPlaneSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/${CONTROL_PLANE_NAMESPACE}/sa/${CONTROL_PLANE_SERVICE_ACCOUNT}`;
}

/** TLS options for a connection to `url` (undefined for `http:`/`ws:`). Not a hot path: one per connection. */
export function controlTlsOptions(url: string, s: ControlTlsState): ConnectionOptions | undefined {
  if (!/^(https|wss):/i.test(url)) return undefined;
  const ca = [
    ...(s.bundlePem ? [s.bundlePem] : []),
    // Without an operator CA, the system roots still vouch for a publicly issued certificate.
    ...(s.caPem ? [s.caPem] : tls.rootCertificates),
  ];
  const td = s.trustDomain ?? (s.cert ? s.cert.spiffeId.slice('spiffe://'.length).split('/')[0] : undefined);
  return {
    ca,
    ...(s.cert ? { cert: s.cert.certChainPem, key: s.cert.keyPem } : {}),
    minVersion: 'TLSv1.2',
    checkServerIdentity: (host: string, peer: PeerCertificate) => {
      const uris = (peer.subjectaltname ?? '').split(', ');
      // The mesh CA issues the control plane's certificate for its SPIFFE ID (as a workload
      // checks its peer's identity, not a host name); an operator's certificate has a name.
      if (td !== undefined ? uris.includes(`URI:${controlPlaneSpiffeId(td)}`) : uris.some(isControlPlaneUri))
        return undefined;
      return tls.checkServerIdentity(host, peer);
    },
  };
}

function isControlPlaneUri(san: string): boolean {
  return (
    san.startsWith('URI:spiffe://') &&
    san.endsWith(`/ns/${CONTROL_PLANE_NAMESPACE}/sa/${CONTROL_PLANE_SERVICE_ACCOUNT}`)
  );
}

export interface ControlResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One request to the control plane (node:http/https, so a client certificate can be
 * presented; global fetch cannot take one). No connection reuse: these calls are rare
 * (certificate issuance, a trust-bundle blocking query).
 */
export function controlRequest(
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string>; signal: AbortSignal },
  tlsOpts: ConnectionOptions | undefined,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      u,
      {
        method: init.method ?? 'GET',
        headers: {
          ...init.headers,
          ...(init.body !== undefined ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}),
        },
        agent: false,
        signal: init.signal,
        ...(mod === https ? tlsOpts : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', (e) =>
      reject(
        e.name === 'AbortError'
          ? e
          : new HexmeshError('HEXMESH_ERR_CONNECT_FAILED', `${u.origin}: ${e.message}`, { cause: e }),
      ),
    );
    req.end(init.body);
  });
}
