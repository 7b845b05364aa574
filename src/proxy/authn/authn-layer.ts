/**
 * The RequestAuthentication layer: validates the request's JWT (if any) before
 * authorization sees the request, and records its principal and claims.
 */
import type { RequestAuthentication } from '../../config/resources.ts';
import type { Layer } from '../core/dispatch.ts';
import { JwtAuthenticator, type JwtAuthenticatorOptions } from './jwt-authenticator.ts';
import { setRequestAuth } from './request-auth.ts';

/** Wrap a service with JWT validation by `authenticator`. */
export function authnLayer(authenticator: JwtAuthenticator): Layer {
  return (next) => async (req) => {
    const auth = await authenticator.authenticate(req.headers);
    if (auth !== undefined) setRequestAuth(req.ctx, auth);
    return next(req);
  };
}

/** Build the authenticator for the policies that apply, or undefined when none does. */
export function buildAuthenticator(
  policies: readonly RequestAuthentication[],
  opts?: JwtAuthenticatorOptions,
): JwtAuthenticator | undefined {
  if (policies.length === 0) return undefined;
  const sorted = [...policies].sort((a, b) =>
    `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`),
  );
  return new JwtAuthenticator(sorted, opts);
}
