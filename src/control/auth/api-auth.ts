/**
 * Authentication and authorization of the control plane's own API (docs/api-security.md).
 *
 * Who is calling, in order:
 * 1. a client certificate verified by the TLS server (HTTPS only) whose URI SAN is a SPIFFE
 *    ID of our trust domain: the workload of that identity;
 * 2. `Authorization: Bearer hxat.…`: an API token with its role; a token of role workload
 *    stands for the one service it was created for (unbound ones are refused);
 * 3. `Authorization: Bearer hxjt.…`: a join token, standing for its workload on the
 *    discovery stream only (before the proxy has a certificate).
 *
 * Every route declares a permission (router.ts); a route without one is denied, so a new
 * endpoint is closed until someone decides who may use it. 401 when no (valid) credential
 * was sent, 403 naming the permission missing. Secrets never reach a message: refusals name
 * a token by its id at most.
 */
import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { parseSpiffeId, uriSans } from '../../identity/identity-source.ts';
import { joinTokenOfSubject } from '../../identity/ca.ts';
import { INSTANCE_ID, type JoinTokens } from '../../identity/join-tokens.ts';
import type { ApiTokens } from './api-tokens.ts';
import type { LiveCredentials } from './live-credentials.ts';
import { JOIN_TOKEN_PERMISSIONS, ROLE_PERMISSIONS, type Permission, type Role } from './roles.ts';

/**
 * What a caller proved itself with, for the streams that outlive its request: they end when
 * it is revoked or expires (live-credentials.ts). Times are ms since the epoch.
 */
export type Credential =
  | { readonly kind: 'api-token'; readonly id: string; readonly expiresAt?: number }
  | { readonly kind: 'join-token'; readonly id: string; readonly expiresAt: number }
  | {
      readonly kind: 'certificate';
      readonly spiffeId: string;
      readonly cert: X509Certificate;
      readonly expiresAt: number;
      /** The join token it was got with (its subject names it): revoking that ends it too. */
      readonly joinToken?: string;
    };

/** A caller the API has authenticated. */
export type Principal =
  | {
      readonly kind: 'token';
      readonly role: Role;
      readonly id: string;
      readonly name: string;
      readonly credential: Credential;
    }
  | {
      readonly kind: 'workload';
      readonly role: 'workload';
      /**
       * `mtls`: a client certificate; `join-token`: a join token before the first certificate;
       * `api-token`: an API token of role workload, bound to this identity at creation.
       */
      readonly via: 'mtls' | 'join-token' | 'api-token';
      /** With `api-token`: the token's id (never its secret). */
      readonly tokenId?: string;
      /** A token bound to one instance as well: the only instance id it may act for. */
      readonly instance?: string;
      readonly spiffeId: string;
      readonly namespace: string;
      readonly serviceAccount: string;
      readonly credential: Credential;
    };

/** What a route requires: a permission, one chosen per request (KV keys vs values), or nothing. */
export type RoutePermission =
  | Permission
  | 'public'
  | ((req: { query: URLSearchParams; params: Readonly<Record<string, string>> }) => Permission);

export type AuthMode = 'enforce' | 'off';

export interface ApiAuthOptions {
  mode: AuthMode;
  tokens: ApiTokens;
  joinTokens: JoinTokens;
  /** The CA's trust domain: client certificates of another are refused. */
  trustDomain(): Promise<string>;
  /**
   * Follows revocation, expiry and rotation for open streams; it also refuses a client
   * certificate whose authority a rotation removed on a connection verified before that.
   */
  live?: LiveCredentials;
}

const principals = new WeakMap<IncomingMessage, Principal>();
/** Why a client certificate TLS verified no longer counts (authenticate → check). */
const staleCerts = new WeakMap<IncomingMessage, string>();

/** The principal `check`/`checkUpgrade` found for this request (undefined with auth off). */
export function principalOf(req: IncomingMessage): Principal | undefined {
  return principals.get(req);
}

/** How to refer to a caller in a refusal (no secret, no token name). */
export function describePrincipal(p: Principal): string {
  return p.kind === 'token' ? `role ${p.role}` : `workload ${p.spiffeId}`;
}

export class ApiAuth {
  readonly mode: AuthMode;
  readonly #opts: ApiAuthOptions;

  constructor(opts: ApiAuthOptions) {
    this.mode = opts.mode;
    this.#opts = opts;
  }

  get enforced(): boolean {
    return this.mode === 'enforce';
  }

  /**
   * The caller, or undefined when it sent no credential at all. A credential that is sent
   * but wrong (unknown, revoked, expired token; certificate of another trust domain) is 401.
   */
  async authenticate(req: IncomingMessage): Promise<Principal | undefined> {
    const sock = req.socket as Partial<TLSSocket>;
    if (sock.encrypted && sock.authorized) {
      const cert = sock.getPeerCertificate?.();
      const uris = uriSans(cert?.subjectaltname);
      // Two identities in one certificate prove neither (the CA never issues one).
      if (uris.length > 1)
        throw new HexmeshError(
          'HEXMESH_ERR_UNAUTHENTICATED',
          `client certificate carries ${uris.length} URI SANs; a workload certificate has exactly one`,
        );
      const uri = uris[0]?.startsWith('spiffe://') ? uris[0] : undefined;
      const id = uri ? parseSpiffeId(uri) : undefined;
      const ours = id !== undefined && id.trustDomain === (await this.#opts.trustDomain());
      // TLS verified the certificate when the connection was made; a connection kept alive
      // carries it past its expiry, the rotation that removed its authority, or the revocation
      // of the join token it was got with (which ended its renewals, ca.ts). Such a certificate
      // counts as none, like one TLS did not verify.
      const x509 = ours ? sock.getPeerX509Certificate!()! : undefined;
      const joinToken = x509 && joinTokenOfSubject(x509.subject);
      const stale =
        x509 &&
        (this.#opts.live?.staleCertificate(uri!, x509) ??
          (joinToken !== undefined && !(await this.#opts.joinTokens.exists(joinToken))
            ? `client certificate ${uri!}: its join token ${joinToken} was revoked`
            : undefined));
      if (stale !== undefined) staleCerts.set(req, stale);
      else if (id && x509) {
        // A certificate got with an instance-bound join token names its instance (CN).
        const instance = instanceOf(cert?.subject?.CN);
        return {
          kind: 'workload',
          role: 'workload',
          via: 'mtls',
          spiffeId: uri!,
          namespace: id.namespace,
          serviceAccount: id.serviceAccount,
          ...(instance !== undefined && { instance }),
          credential: {
            kind: 'certificate',
            spiffeId: uri!,
            cert: x509,
            expiresAt: Date.parse(x509.validTo),
            ...(joinToken !== undefined && { joinToken }),
          },
        };
      } else if (uri !== undefined)
        throw new HexmeshError(
          'HEXMESH_ERR_UNAUTHENTICATED',
          `client certificate ${uri} is not an identity of this mesh's trust domain`,
        );
    }
    const header = req.headers.authorization;
    if (header === undefined || header === '') return undefined;
    const sp = header.indexOf(' ');
    if (sp < 0 || header.slice(0, sp).toLowerCase() !== 'bearer')
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        'the Authorization header must be "Bearer <token>"',
      );
    const token = header.slice(sp + 1).trim();
    if (token.startsWith('hxjt.')) {
      const t = await this.#opts.joinTokens.verify(token);
      const td = await this.#opts.trustDomain();
      return {
        kind: 'workload',
        role: 'workload',
        via: 'join-token',
        spiffeId: `spiffe://${td}/ns/${t.namespace}/sa/${t.serviceAccount}`,
        namespace: t.namespace,
        serviceAccount: t.serviceAccount,
        ...(t.instance !== undefined && { instance: t.instance }),
        credential: { kind: 'join-token', id: t.id, expiresAt: Date.parse(t.expiresAt) },
      };
    }
    const t = await this.#opts.tokens.verify(token);
    const credential: Credential = {
      kind: 'api-token',
      id: t.id,
      ...(t.expiresAt !== undefined && { expiresAt: Date.parse(t.expiresAt) }),
    };
    if (t.role === 'workload' && t.subject) {
      const td = await this.#opts.trustDomain();
      return {
        kind: 'workload',
        role: 'workload',
        via: 'api-token',
        tokenId: t.id,
        spiffeId: `spiffe://${td}/ns/${t.subject.namespace}/sa/${t.subject.service}`,
        namespace: t.subject.namespace,
        serviceAccount: t.subject.service,
        ...(t.subject.instance !== undefined && { instance: t.subject.instance }),
        credential,
      };
    }
    return { kind: 'token', role: t.role, id: t.id, name: t.name, credential };
  }

  /** Throw 401/403 unless `p` holds `permission`; `what` names the action (`GET /v1/kv/a`). */
  authorize(p: Principal | undefined, permission: Permission, what: string): void {
    if (!p)
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        `${what} requires authentication (permission ${permission}): send "Authorization: Bearer <token>" ` +
          '(hexmesh auth token create) or a workload certificate',
      );
    // A workload token made before tokens were bound to a service could act for any service.
    if (p.kind === 'token' && p.role === 'workload')
      throw new HexmeshError(
        'HEXMESH_ERR_DENIED',
        `API token ${p.id} of role workload is bound to no service and may not be used (needed for ${what}): ` +
          'create one with hexmesh auth token create <name> --role workload --service <service>',
      );
    const granted =
      p.kind === 'workload' && p.via === 'join-token' ? JOIN_TOKEN_PERMISSIONS : ROLE_PERMISSIONS[p.role];
    if (!granted.has(permission))
      throw new HexmeshError(
        'HEXMESH_ERR_DENIED',
        `${describePrincipal(p)} lacks permission ${permission} (needed for ${what})`,
      );
  }

  /**
   * Check an API request against its route's permission; returns the principal (also
   * available through `principalOf`). `undefined` permission: the route declared none → denied.
   */
  async check(
    req: IncomingMessage,
    permission: RoutePermission | undefined,
    what: string,
    query: URLSearchParams,
    params: Readonly<Record<string, string>> = {},
  ): Promise<Principal | undefined> {
    if (!this.enforced) return undefined;
    // A public route still learns who is calling (the certificate endpoint scopes by it).
    const p = await this.authenticate(req);
    if (p) principals.set(req, p);
    if (permission === 'public') return p;
    if (!p) {
      // Name why a presented certificate did not count (another CA, expired), rather than
      // answering as if nothing had been sent.
      const stale = staleCerts.get(req);
      if (stale !== undefined) throw new HexmeshError('HEXMESH_ERR_UNAUTHENTICATED', `${what}: ${stale}`);
      const refused = refusedClientCert(req);
      if (refused !== undefined)
        throw new HexmeshError(
          'HEXMESH_ERR_UNAUTHENTICATED',
          `${what}: client certificate refused (${refused}); send a workload certificate of this mesh or a bearer token`,
        );
    }
    if (permission === undefined)
      throw new HexmeshError(
        'HEXMESH_ERR_DENIED',
        `${what} declares no permission: denied by default (docs/api-security.md)`,
      );
    this.authorize(p, typeof permission === 'function' ? permission({ query, params }) : permission, what);
    return p;
  }
}

/** The instance a workload certificate's subject CN names (the CA sets it; see ca.ts). */
function instanceOf(cn: string | string[] | undefined): string | undefined {
  return typeof cn === 'string' && INSTANCE_ID.test(cn) ? cn : undefined;
}

/** The TLS verification error of a client certificate that was presented but not verified. */
function refusedClientCert(req: IncomingMessage): string | undefined {
  const sock = req.socket as Partial<TLSSocket>;
  if (!sock.encrypted || sock.authorized) return undefined;
  const cert = sock.getPeerCertificate?.();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  return String(sock.authorizationError ?? 'not verified');
}

/**
 * For handlers that act on one workload (its instance, its certificate): a workload caller
 * may act only as its own service account in its own namespace (and, for a token bound to
 * one instance, only for that instance id). People and scripts (tokens)
 * and unauthenticated calls with auth off pass.
 */
export function requireSelf(
  p: Principal | undefined,
  namespace: string,
  service: string,
  instance?: string,
): void {
  if (p?.kind !== 'workload') return;
  if (p.namespace !== namespace || p.serviceAccount !== service)
    throw new HexmeshError(
      'HEXMESH_ERR_DENIED',
      `workload ${p.spiffeId} may act only for service ${p.serviceAccount} in namespace ${p.namespace}, not ${service} in ${namespace}`,
    );
  if (p.instance !== undefined && instance !== p.instance)
    throw new HexmeshError(
      'HEXMESH_ERR_DENIED',
      `workload ${p.spiffeId} may act only for instance ${p.instance}, not ${instance ?? '(none named)'}`,
    );
}
