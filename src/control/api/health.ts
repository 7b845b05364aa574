/** `GET /v1/health`: is this replica serving, can it reach the store, does it lead. */
import type { Router } from '../http/router.ts';
import type { ApiContext } from './context.ts';

export function healthRoutes(router: Router, ctx: ApiContext): void {
  router.add(
    'GET',
    '/v1/health',
    async () => {
      try {
        const revision = await ctx.store.revision();
        return {
          json: { status: 'ok', store: { kind: ctx.store.kind, ok: true, revision }, leader: ctx.isLeader() },
          index: revision,
        };
      } catch (e) {
        return {
          status: 503,
          json: {
            status: 'unavailable',
            store: { kind: ctx.store.kind, ok: false, error: (e as Error).message },
            leader: ctx.isLeader(),
          },
        };
      }
    },
    'public',
  );
}
