/**
 * What request authentication established about a request (a validated JWT), kept
 * beside the request context rather than on it: claims are an object, and the
 * context's `notes` hold only scalars for telemetry.
 */
import type { RequestContext } from '../core/dispatch.ts';

/** A validated JWT. */
export interface RequestAuth {
  /** `<iss>/<sub>`, Istio's request principal. */
  readonly principal: string;
  /** The token's payload (claims), as verified. */
  readonly claims: Readonly<Record<string, unknown>>;
}

const byContext = new WeakMap<RequestContext, RequestAuth>();

/** Record the validated token of the request owning `ctx`. */
export function setRequestAuth(ctx: RequestContext, auth: RequestAuth): void {
  byContext.set(ctx, auth);
  ctx.notes.requestPrincipal = auth.principal;
}

/** The validated token of the request owning `ctx`, if it carried one. */
export function requestAuthOf(ctx: RequestContext): RequestAuth | undefined {
  return byContext.get(ctx);
}
