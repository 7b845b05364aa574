/**
 * Automatic mutual TLS between sidecars (docs/mtls.md), built from an IdentitySource.
 *
 * Client side (outbound): a meshed endpoint is reached over TLS 1.3 presenting the
 * workload certificate, trusting the bundle, and checking that the server's SPIFFE ID is
 * the one discovery gave for the endpoint (or, when discovery did not say, the identity of
 * the destination's service account in our trust domain: `spiffe://<our td>/ns/<ns>/sa/<service>`,
 * the service account defaulting to the service name). A wrong peer fails the handshake
 * with HEXMESH_ERR_TLS_IDENTITY_MISMATCH.
 *
 * Server side (inbound): a TLS ClientHello on the inbound listener is terminated here with
 * the workload certificate; a client certificate from the bundle is required; the peer's
 * SPIFFE ID is put on the decrypted socket (PEER_IDENTITY) for the request context.
 *
 * Rotation: on every IdentitySource change a new SecureContext is built; new handshakes
 * (client connects and server accepts) use it, connections already open keep theirs.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { Counter, type Registry } from 'prom-client';
import type { PeerAuthentication, Resource } from '../../config/resources.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { parseSpiffeId, type IdentitySource } from '../../identity/identity-source.ts';
import { PEER_IDENTITY } from '../listen/request-context.ts';
import { PLAINTEXT, type HopSecurity, type PeerInfo } from './hop-security.ts';

/** ALPN of the opaque TCP tunnel between sidecars. */
export const ALPN_TUNNEL = 'hexmesh-tcp';
const SERVER_ALPN = ['h2', 'http/1.1', ALPN_TUNNEL];
/** A client that has not finished its handshake by then is cut (slow-handshake protection). */
const HANDSHAKE_TIMEOUT = 10_000;

export type TlsMode = 'STRICT' | 'PERMISSIVE';

/** The SPIFFE ID (first `URI:spiffe://` SAN) of a peer certificate, or '' if it has none. */
export function spiffeIdOf(cert: { subjectaltname?: string } | undefined): string {
  const san = cert?.subjectaltname;
  if (!san) return '';
  for (const part of san.split(', ')) if (part.startsWith('URI:spiffe://')) return part.slice(4);
  return '';
}

/** How many URI SANs a certificate has (an X.509-SVID has exactly one). */
export function uriSanCount(cert: { subjectaltname?: string } | undefined): number {
  const san = cert?.subjectaltname;
  if (!san) return 0;
  let n = 0;
  for (const part of san.split(', ')) if (part.startsWith('URI:')) n++;
  return n;
}

/** SPIFFE trust domain syntax: lower-case letters, digits, `.`, `-`, `_`. */
const SPIFFE_ID = /^spiffe:\/\/([a-z0-9._-]+)\/[^?#]+$/;

/**
 * Why a peer certificate cannot name a workload of this mesh, or undefined if it can: an
 * X.509-SVID has exactly one URI SAN (SPIFFE X.509-SVID §2; two would let authorization and
 * logs disagree on who called), and its trust domain is ours or one explicitly federated
 * (the bundle may hold other roots; a root's signature alone does not put a workload in our
 * mesh, so `spiffe://evil.example/ns/sec/...` is not namespace `sec`).
 */
export function peerIdentityProblem(
  cert: { subjectaltname?: string } | undefined,
  trustDomain: string,
  federated: ReadonlySet<string>,
): string | undefined {
  const uris = uriSanCount(cert);
  if (uris !== 1) return uris === 0 ? 'no URI SAN (not a workload certificate)' : `${uris} URI SANs`;
  const id = spiffeIdOf(cert);
  const td = SPIFFE_ID.exec(id)?.[1];
  if (td === undefined) return `not a SPIFFE ID: ${JSON.stringify(id)}`;
  if (td !== trustDomain && !federated.has(td))
    return `trust domain ${td} is neither ${trustDomain} nor federated (proxy.federatedTrustDomains)`;
  return undefined;
}

/** One verified peer identity: the HopSecurity used for every endpoint expected to have it. */
class PeerTls implements HopSecurity {
  readonly scheme = 'https' as const;
  readonly peerIdentity: string;
  readonly #owner: MeshTls;
  readonly #check: (host: string, cert: tls.PeerCertificate) => Error | undefined;

  constructor(owner: MeshTls, identity: string) {
    this.#owner = owner;
    this.peerIdentity = identity;
    this.#check = (host, cert) => {
      const got = spiffeIdOf(cert);
      // A second URI SAN could name someone else to a reader that takes another one.
      if (got === identity && uriSanCount(cert) === 1) return undefined;
      owner.countHandshakeFailure('outbound');
      return new HexmeshError(
        'HEXMESH_ERR_TLS_IDENTITY_MISMATCH',
        `the sidecar at ${host} presented ${got || 'no SPIFFE ID'}, expected ${identity}`,
        { context: { endpoint: host, expected: identity, presented: got } },
      );
    };
  }

  connectOptions(): Partial<tls.ConnectionOptions> {
    return {
      // Read at connect time: a rotated certificate or bundle applies to the next connection.
      secureContext: this.#owner.secureContext,
      rejectUnauthorized: true,
      checkServerIdentity: this.#check,
    };
  }
}

export interface MeshTlsOptions {
  /** Where to register `hexmesh_tls_*` counters (the proxy's registry). */
  registry?: Registry;
}

/**
 * The proxy's mTLS state. A HopSecurity itself (plaintext by default; `forPeer` picks TLS
 * for meshed endpoints once an identity with a certificate is set).
 */
export class MeshTls implements HopSecurity {
  readonly scheme = 'http' as const;
  #source: IdentitySource | undefined;
  #unsubscribe: (() => void) | undefined;
  #ctx: tls.SecureContext | undefined;
  #trustDomain = '';
  #selfId = '';
  readonly #peers = new Map<string, PeerTls>();
  readonly #byPeer = new WeakMap<PeerInfo, PeerTls>();
  readonly #server: tls.Server;
  #onSecure: (socket: tls.TLSSocket) => void = (s) => s.destroy();
  readonly #plaintextRefused: Counter | undefined;
  readonly #handshakeFailures: Counter<'direction'> | undefined;
  /** Inbound mode in force (from PeerAuthentication resources or proxy.tls.mode). */
  mode: TlsMode = 'PERMISSIVE';
  /** Trust domains besides ours whose workloads may connect in (proxy.federatedTrustDomains). */
  federatedTrustDomains: ReadonlySet<string> = new Set();

  constructor(opts: MeshTlsOptions = {}) {
    this.#server = tls.createServer({
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: SERVER_ALPN,
      minVersion: 'TLSv1.3',
      handshakeTimeout: HANDSHAKE_TIMEOUT,
      allowHalfOpen: true,
    });
    this.#server.on('secureConnection', (s: tls.TLSSocket) => {
      const cert = s.getPeerCertificate();
      // Signed by a root of the bundle, but not a workload of this mesh (or a federated one).
      if (peerIdentityProblem(cert, this.#trustDomain, this.federatedTrustDomains) !== undefined) {
        this.countHandshakeFailure('inbound');
        s.destroy();
        return;
      }
      const id = spiffeIdOf(cert);
      (s as unknown as Record<symbol, string>)[PEER_IDENTITY] = id;
      this.#onSecure(s);
    });
    this.#server.on('tlsClientError', (_err, s) => {
      this.countHandshakeFailure('inbound');
      s.destroy();
    });
    if (opts.registry) {
      this.#plaintextRefused = new Counter({
        name: 'hexmesh_tls_plaintext_refused_total',
        help: 'Plaintext connections refused on the inbound listener (mTLS mode STRICT)',
        registers: [opts.registry],
      });
      this.#handshakeFailures = new Counter({
        name: 'hexmesh_tls_handshake_failures_total',
        help: 'Failed mTLS handshakes (bad or missing peer certificate, wrong identity, protocol)',
        labelNames: ['direction'],
        registers: [opts.registry],
      });
    }
  }

  /** Use this identity (or none: plaintext). Replaces and unsubscribes from the previous one. */
  setSource(source: IdentitySource | undefined): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#source = source;
    if (source) this.#unsubscribe = source.onChange(() => this.#reload());
    this.#reload();
  }

  get source(): IdentitySource | undefined {
    return this.#source;
  }

  /** True once a certificate is in hand: outbound meshed hops use TLS, inbound terminates it. */
  get enabled(): boolean {
    return this.#ctx !== undefined;
  }

  /** The context new handshakes use (client and server). */
  get secureContext(): tls.SecureContext | undefined {
    return this.#ctx;
  }

  /** This proxy's SPIFFE ID ('' without a certificate). */
  get identity(): string {
    return this.#selfId;
  }

  #reload(): void {
    const cert = this.#source?.current();
    if (!this.#source || !cert) {
      this.#ctx = undefined;
      this.#selfId = '';
      return;
    }
    const options: tls.SecureContextOptions = {
      cert: cert.certChainPem,
      key: cert.keyPem,
      ca: this.#source.trustBundlePem(),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
    };
    // Build first: a bad certificate throws here and the previous context keeps serving.
    const ctx = tls.createSecureContext(options);
    this.#server.setSecureContext(options);
    this.#ctx = ctx;
    this.#selfId = cert.spiffeId;
    const td = parseSpiffeId(cert.spiffeId)?.trustDomain ?? '';
    if (td !== this.#trustDomain) this.#peers.clear();
    this.#trustDomain = td;
  }

  connectOptions(): Partial<tls.ConnectionOptions> {
    return {};
  }

  /** TLS for a meshed endpoint once we have a certificate; plaintext otherwise. */
  forPeer(peer: PeerInfo): HopSecurity {
    if (!peer.meshed || this.#ctx === undefined) return PLAINTEXT;
    // Per request: a peer (immutable, made per config update) finds its TLS without building
    // and hashing its SPIFFE ID again (~1 % of the outbound sidecar's CPU).
    const known = this.#byPeer.get(peer);
    if (known !== undefined) return known;
    const expected = peer.identity ?? `spiffe://${this.#trustDomain}/ns/${peer.namespace}/sa/${peer.service}`;
    let p = this.#peers.get(expected);
    if (!p) {
      if (this.#peers.size > 10_000) this.#peers.clear();
      this.#peers.set(expected, (p = new PeerTls(this, expected)));
    }
    this.#byPeer.set(peer, p);
    return p;
  }

  /**
   * Terminate TLS on an inbound socket whose first bytes (`head`, a ClientHello) were read
   * during detection. `onSecure` gets the decrypted socket of a verified peer.
   */
  accept(socket: net.Socket, head: Buffer): void {
    if (this.#ctx === undefined) {
      // No identity: we cannot be a TLS server. The peer sees a reset.
      this.countHandshakeFailure('inbound');
      socket.destroy();
      return;
    }
    // tls.TLSSocket reads what is buffered on the raw socket before its own handle.
    if (head.length) socket.unshift(head);
    this.#server.emit('connection', socket);
  }

  /** Where decrypted sockets go (the proxy's detection and HTTP/tunnel handlers). */
  onSecureConnection(handler: (socket: tls.TLSSocket) => void): void {
    this.#onSecure = handler;
  }

  /** A plaintext connection arrived on the inbound listener: true if the mode lets it through. */
  admitPlaintext(socket: net.Socket): boolean {
    if (this.mode !== 'STRICT') return true;
    this.#plaintextRefused?.inc();
    socket.destroy();
    return false;
  }

  countHandshakeFailure(direction: 'inbound' | 'outbound'): void {
    this.#handshakeFailures?.inc({ direction });
  }

  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#server.close();
  }
}

/**
 * The inbound mode for a workload: a PeerAuthentication naming its service (targetRef or
 * selector `service`) wins over one for its whole namespace, which wins over `fallback`
 * (proxy.tls.mode), whose default is PERMISSIVE (migration first, as Istio).
 */
export function inboundTlsMode(
  resources: readonly Resource[],
  service: string,
  namespace: string,
  fallback: TlsMode = 'PERMISSIVE',
): TlsMode {
  let nsMode: TlsMode | undefined;
  for (const r of resources) {
    if (r.kind !== 'PeerAuthentication' || r.metadata.namespace !== namespace) continue;
    const target = targetOf(r);
    if (target === service) return r.spec.mode;
    if (target === undefined) nsMode ??= r.spec.mode;
  }
  return nsMode ?? fallback;
}

function targetOf(r: PeerAuthentication): string | undefined {
  return r.spec.targetRef?.name ?? r.spec.selector?.service;
}
