/**
 * The RequestAuthentication layer: validates the request's JWT (if any) before
 * authorization sees the request, and records its principal and claims.
 */
import type { RequestAuthentication } from '../../config/resources.ts';
import type { HeaderMap, Layer } from '../core/dispatch.ts';
import type { JwtAuthenticator, JwtAuthenticatorOptions } from './jwt-authenticator.ts';
import { setRequestAuth, type RequestAuth } from './request-auth.ts';

/** What the layer needs: {@link JwtAuthenticator.authenticate}. */
export interface Authenticator {
  authenticate(headers: HeaderMap): Promise<RequestAuth | undefined>;
}

/** Wrap a service with JWT validation by `authenticator`. */
export function authnLayer(authenticator: Authenticator): Layer {
  return (next) => async (req) => {
    const auth = await authenticator.authenticate(req.headers);
    if (auth !== undefined) setRequestAuth(req.ctx, auth);
    return next(req);
  };
}

/**
 * A {@link JwtAuthenticator} built on first use. The JWT library (jose) is then loaded only
 * by a proxy that a RequestAuthentication applies to: every CLI command shares one bundle,
 * and a sidecar without JWT policies should not carry it (RSS). The import starts at once,
 * so it is usually done before the first request.
 */
class LazyAuthenticator implements Authenticator {
  readonly #built: Promise<JwtAuthenticator>;
  #ready: JwtAuthenticator | undefined;

  constructor(policies: readonly RequestAuthentication[], opts: JwtAuthenticatorOptions | undefined) {
    this.#built = import('./jwt-authenticator.ts').then((m) => {
      this.#ready = new m.JwtAuthenticator(policies, opts);
      return this.#ready;
    });
    // A failed import is reported by the first request that waits for it.
    this.#built.catch(() => {});
  }

  authenticate(headers: HeaderMap): Promise<RequestAuth | undefined> {
    if (this.#ready !== undefined) return this.#ready.authenticate(headers);
    return this.#built.then((a) => a.authenticate(headers));
  }
}

/** Build the authenticator for the policies that apply, or undefined when none does. */
export function buildAuthenticator(
  policies: readonly RequestAuthentication[],
  opts?: JwtAuthenticatorOptions,
): Authenticator | undefined {
  if (policies.length === 0) return undefined;
  const sorted = [...policies].sort((a, b) =>
    `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`),
  );
  return new LazyAuthenticator(sorted, opts);
}
