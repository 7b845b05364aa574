/**
 * JWT validation for RequestAuthentication (Istio semantics, Envoy's jwt_authn):
 * - no token → the request goes on unauthenticated (an AuthorizationPolicy with
 *   `requestPrincipals` is what makes a token mandatory);
 * - a token that is malformed, from an issuer no rule names, expired, not yet valid,
 *   for another audience or badly signed → 401 `unauthenticated`;
 * - a valid token → `<iss>/<sub>` and its claims for authorization; the token header
 *   is removed before the app unless the rule says `forwardOriginalToken`.
 * Error messages name the reason, never the token.
 */
import { decodeJwt, errors, jwtVerify } from 'jose';
import type { JwtRule, RequestAuthentication } from '../../config/resources.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { HeaderMap } from '../core/dispatch.ts';
import { inlineJwks, RemoteJwks, type JwksSource, type RemoteJwksOptions } from './jwks-source.ts';
import type { RequestAuth } from './request-auth.ts';

/** Allowed clock skew for exp/nbf/iat, 60 s as Envoy's jwt_authn. */
export const CLOCK_SKEW_S = 60;

interface TokenLocation {
  /** Lower-case header name. */
  readonly header: string;
  /** Lower-case prefix before the token (`bearer `). */
  readonly prefix: string;
}

interface CompiledRule {
  readonly issuer: string;
  readonly audiences: string[] | undefined;
  readonly keys: JwksSource;
  readonly forward: boolean;
}

const DEFAULT_LOCATION: TokenLocation = { header: 'authorization', prefix: 'bearer ' };

export interface JwtAuthenticatorOptions {
  /** Wall clock in ms for exp/nbf (default Date.now). */
  wallNow?: () => number;
  /** Options for JWKS fetched from a URL. */
  remote?: RemoteJwksOptions;
}

export class JwtAuthenticator {
  readonly #rules = new Map<string, CompiledRule>();
  readonly #locations: TokenLocation[] = [];
  readonly #wallNow: (() => number) | undefined;

  constructor(policies: readonly RequestAuthentication[], opts: JwtAuthenticatorOptions = {}) {
    this.#wallNow = opts.wallNow;
    for (const p of policies)
      for (const r of p.spec.jwtRules) {
        // First rule for an issuer wins (policies arrive sorted by name).
        if (!this.#rules.has(r.issuer)) this.#rules.set(r.issuer, compileRule(r, opts.remote));
        for (const l of r.fromHeaders?.map((h) => ({
          header: h.name.toLowerCase(),
          prefix: h.prefix.toLowerCase(),
        })) ?? [DEFAULT_LOCATION])
          if (!this.#locations.some((x) => x.header === l.header && x.prefix === l.prefix))
            this.#locations.push(l);
      }
  }

  /**
   * Validate the request's token, if any. Resolves undefined when there is none; rejects
   * with HEXMESH_ERR_UNAUTHENTICATED when there is one and it is not valid.
   */
  async authenticate(headers: HeaderMap): Promise<RequestAuth | undefined> {
    let token: string | undefined;
    let where: TokenLocation | undefined;
    for (const l of this.#locations) {
      const v = headers[l.header];
      const s = Array.isArray(v) ? v[0] : v;
      if (
        s !== undefined &&
        s.length > l.prefix.length &&
        s.slice(0, l.prefix.length).toLowerCase() === l.prefix
      ) {
        token = s.slice(l.prefix.length).trim();
        where = l;
        break;
      }
    }
    if (token === undefined || where === undefined) return undefined;
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw unauthenticated('malformed JWT');
    }
    const rule = iss === undefined ? undefined : this.#rules.get(iss);
    if (rule === undefined) throw unauthenticated(`JWT issuer ${JSON.stringify(iss ?? '')} is not accepted`);
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, rule.keys.getKey, {
        issuer: rule.issuer,
        audience: rule.audiences,
        clockTolerance: CLOCK_SKEW_S,
        currentDate: this.#wallNow ? new Date(this.#wallNow()) : undefined,
      }));
    } catch (err) {
      throw unauthenticated(reasonOf(err), err);
    }
    if (!rule.forward) delete headers[where.header];
    return Object.freeze({ principal: `${rule.issuer}/${String(payload.sub ?? '')}`, claims: payload });
  }

  close(): void {
    for (const r of this.#rules.values()) r.keys.close();
  }
}

function compileRule(r: JwtRule, remote: RemoteJwksOptions | undefined): CompiledRule {
  return {
    issuer: r.issuer,
    audiences: r.audiences,
    keys: r.jwks !== undefined ? inlineJwks(r.jwks) : new RemoteJwks(r.jwksUri!, remote),
    forward: r.forwardOriginalToken,
  };
}

function unauthenticated(reason: string, cause?: unknown): HexmeshError {
  return new HexmeshError('HEXMESH_ERR_UNAUTHENTICATED', `unauthenticated: ${reason}`, {
    cause,
    context: { reason },
  });
}

/** A short reason from jose's error codes (never the token itself). */
function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'JWT expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'JWT audience not accepted';
    if (err.claim === 'nbf') return 'JWT not yet valid';
    return `JWT claim ${err.claim} invalid`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'JWT signature invalid';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no key for the JWT (unknown kid)';
  if (err instanceof errors.JWKSMultipleMatchingKeys) return 'several keys match the JWT';
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported)
    return 'JWT algorithm not accepted';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed JWT';
  if ((err as Error)?.name === 'JwksUnavailableError') return 'JWKS unavailable';
  return 'JWT invalid';
}
