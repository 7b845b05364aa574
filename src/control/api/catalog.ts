/** Catalog API: register (leased), heartbeat, status, deregister, services summary, instances of a service. */
import { KEYS } from '../../store/store.ts';
import { validate } from '../../config/load.ts';
import { badRequest } from '../http/error-response.ts';
import { parseJson } from '../http/body.ts';
import type { Router } from '../http/router.ts';
import { Catalog } from '../catalog/catalog.ts';
import { registerSchema, statusSchema } from '../catalog/instance.ts';
import { blockIfAsked, flag, type ApiContext } from './context.ts';
import { requireSelf } from '../auth/api-auth.ts';

export function catalogRoutes(router: Router, ctx: ApiContext): void {
  router.add(
    'PUT',
    '/v1/catalog/register',
    async (req) => {
      const input = validate(registerSchema, parseJson(await req.body()), 'register body');
      requireSelf(req.principal, input.namespace, input.service);
      const inst = await ctx.catalog.register(input);
      return { json: { id: inst.id, lease: inst.lease, status: inst.status } };
    },
    'catalog:write',
  );

  router.add(
    'PUT',
    '/v1/catalog/heartbeat/:lease',
    async (req) => {
      const lease = Number(req.params.lease);
      if (!Number.isSafeInteger(lease) || lease <= 0)
        throw badRequest(`lease must be a positive integer (got ${JSON.stringify(req.params.lease)})`);
      await ctx.catalog.heartbeat(lease);
      return { json: { ok: true, lease } };
    },
    'catalog:write',
  );

  router.add(
    'PUT',
    '/v1/catalog/deregister/:namespace/:service/:id',
    async (req) => {
      const { namespace, service, id } = req.params;
      requireSelf(req.principal, namespace, service);
      await ctx.catalog.deregister(namespace, service, id);
      return { json: { ok: true } };
    },
    'catalog:write',
  );

  router.add(
    'PUT',
    '/v1/catalog/status/:namespace/:service/:id',
    async (req) => {
      const { namespace, service, id } = req.params;
      requireSelf(req.principal, namespace, service);
      const body = validate(statusSchema, parseJson(await req.body()), 'status body');
      const inst = await ctx.catalog.setStatus(namespace, service, id, body.status, body.output);
      return { json: inst };
    },
    'catalog:write',
  );

  router.add(
    'GET',
    '/v1/catalog/services',
    async (req) => {
      await blockIfAsked(ctx, req, KEYS.instances);
      const { instances, revision } = await ctx.catalog.list();
      return { json: Catalog.summarize(instances), index: revision };
    },
    'catalog:read',
  );

  router.add(
    'GET',
    '/v1/catalog/service/:namespace/:name',
    async (req) => {
      const { namespace, name } = req.params;
      await blockIfAsked(ctx, req, `${KEYS.instances}${namespace}/${name}/`);
      const { instances, revision } = await ctx.catalog.list(namespace, name);
      // As Consul's ?passing: only instances whose checks all pass (warning is excluded).
      const list = flag(req.query, 'passing') ? instances.filter((i) => i.status === 'passing') : instances;
      return { json: list, index: revision };
    },
    'catalog:read',
  );
}
