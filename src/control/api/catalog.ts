/** Catalog API: register (leased), heartbeat, status, deregister, services summary, instances of a service. */
import { KEYS } from '../../store/store.ts';
import { validate } from '../../config/load.ts';
import { badRequest } from '../http/error-response.ts';
import { parseJson } from '../http/body.ts';
import type { Router } from '../http/router.ts';
import { Catalog } from '../catalog/catalog.ts';
import { defaultInstanceId, registerSchema, statusSchema } from '../catalog/instance.ts';
import { blockIfAsked, flag, type ApiContext } from './context.ts';
import { requireSelf, type Principal } from '../auth/api-auth.ts';
import { callerAdminAddress, portOf } from '../auth/caller-address.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';

export function catalogRoutes(router: Router, ctx: ApiContext): void {
  router.add(
    'PUT',
    '/v1/catalog/register',
    async (req) => {
      const body = validate(registerSchema, parseJson(await req.body()), 'register body');
      requireSelf(req.principal, body.namespace, body.service, body.id ?? defaultInstanceId(body));
      // A workload names only its admin port: the host is where its connection comes from.
      const input =
        req.principal?.kind === 'workload' && body.adminAddress !== undefined
          ? { ...body, adminAddress: callerAdminAddress(req.raw.socket, portOf(body.adminAddress)) }
          : body;
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
      await requireOwnLease(ctx, req.principal, lease);
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
      requireSelf(req.principal, namespace, service, id);
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
      requireSelf(req.principal, namespace, service, id);
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

/**
 * A workload keeps alive only the lease of one of its own instances: a lease id alone does
 * not say whose it is, and keeping another service's dead instance (or any other lease)
 * alive is not a workload's business. 404 when no instance holds the lease (it expired:
 * register again), 403 naming the owner when it is another service's.
 */
async function requireOwnLease(ctx: ApiContext, p: Principal | undefined, lease: number): Promise<void> {
  if (p?.kind !== 'workload') return;
  const own = await ctx.catalog.list(p.namespace, p.serviceAccount);
  if (own.instances.some((i) => i.lease === lease && (p.instance === undefined || i.id === p.instance)))
    return;
  const other = (await ctx.catalog.list()).instances.find((i) => i.lease === lease);
  if (!other)
    throw new HexmeshError(
      'HEXMESH_ERR_NOT_FOUND',
      `lease ${lease} holds no instance of service ${p.serviceAccount} in namespace ${p.namespace} (register again)`,
    );
  throw new HexmeshError(
    'HEXMESH_ERR_DENIED',
    `workload ${p.spiffeId} may keep alive only its own instances; lease ${lease} is instance ${other.id} of service ${other.service} in namespace ${other.namespace}`,
  );
}
