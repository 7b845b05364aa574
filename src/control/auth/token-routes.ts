/**
 * `/v1/auth/*`: API tokens (admin only) and `whoami`. A token's text is in the answer of
 * its creation only; lists show id, name, role and times, never the hash.
 */
import { z } from 'zod';
import { parseDuration } from '../../config/duration.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { parseJson } from '../http/body.ts';
import { badRequest, notFound } from '../http/error-response.ts';
import type { Router } from '../http/router.ts';
import type { ApiAuth } from './api-auth.ts';
import type { ApiTokens } from './api-tokens.ts';
import { ROLES } from './roles.ts';

const createBody = z.strictObject({
  name: z.string().min(1).max(63),
  role: z.enum(ROLES),
  /** A duration (`30d`, `12h`) or ms; absent: no expiry. */
  ttl: z.union([z.string(), z.number()]).optional(),
  /** Role workload only, and required there: the service the token acts as. */
  service: z.string().min(1).max(253).optional(),
  /** With `service`; default `default`. */
  namespace: z.string().min(1).max(253).optional(),
  /** With `service`: bind the token to this one instance id as well. */
  instance: z.string().min(1).max(128).optional(),
});

export function tokenRoutes(router: Router, tokens: ApiTokens, auth: ApiAuth): void {
  router.add(
    'POST',
    '/v1/auth/tokens',
    async (req) => {
      const r = createBody.safeParse(parseJson(await req.body()));
      if (!r.success)
        throw badRequest(
          `invalid body: ${r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`,
        );
      let ttlMs: number | undefined;
      if (r.data.ttl !== undefined) {
        ttlMs = parseDuration(r.data.ttl);
        if (ttlMs === undefined || ttlMs <= 0)
          throw badRequest(`ttl must be a positive duration like 30d (got ${JSON.stringify(r.data.ttl)})`);
      }
      if ((r.data.namespace ?? r.data.instance) !== undefined && r.data.service === undefined)
        throw badRequest('namespace and instance go with service (a workload token is bound to one service)');
      const { token, info } = await tokens.create({
        name: r.data.name,
        role: r.data.role,
        ttlMs,
        ...(r.data.service !== undefined && {
          subject: {
            service: r.data.service,
            namespace: r.data.namespace ?? 'default',
            ...(r.data.instance !== undefined && { instance: r.data.instance }),
          },
        }),
      });
      return { status: 201, json: { token, ...info } };
    },
    'tokens:admin',
  );

  router.add('GET', '/v1/auth/tokens', async () => ({ json: await tokens.list() }), 'tokens:admin');

  router.add(
    'DELETE',
    '/v1/auth/tokens/:id',
    async (req) => {
      if (!(await tokens.revoke(req.params.id))) throw notFound(`API token ${JSON.stringify(req.params.id)}`);
      return { json: { id: req.params.id, action: 'revoked' } };
    },
    'tokens:admin',
  );

  // Public so that it can say "auth is off"; with auth on, no credential is a 401.
  router.add(
    'GET',
    '/v1/auth/whoami',
    async (req) => {
      const p = req.principal;
      if (!p) {
        if (!auth.enforced) return { json: { auth: 'off' } };
        throw new HexmeshError('HEXMESH_ERR_UNAUTHENTICATED', 'no credential sent');
      }
      return {
        json:
          p.kind === 'token'
            ? { auth: 'enforce', kind: p.kind, role: p.role, id: p.id, name: p.name }
            : {
                auth: 'enforce',
                kind: p.kind,
                role: p.role,
                via: p.via,
                spiffeId: p.spiffeId,
                ...(p.tokenId !== undefined && { id: p.tokenId }),
                ...(p.instance !== undefined && { instance: p.instance }),
              },
      };
    },
    'public',
  );
}
