/** What every API handler needs from the control plane, and the blocking-read helper they share. */
import type { Store } from '../../store/store.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { parseBlocking, type ChangeTracker, type Slots } from '../http/blocking.ts';
import type { ApiRequest } from '../http/router.ts';

export interface ApiContext {
  readonly store: Store;
  readonly catalog: Catalog;
  readonly tracker: ChangeTracker;
  /** Limit on concurrent blocking queries and watches. */
  readonly slots: Slots;
  isLeader(): boolean;
  readonly now: () => number;
}

/**
 * For a GET with `?index=N`: wait (holding a slot) until a key under `prefix` — or the
 * key itself with `exact` — changes after N, or the wait ends. A plain GET returns at once.
 */
export async function blockIfAsked(
  ctx: ApiContext,
  req: ApiRequest,
  prefix: string,
  exact = false,
): Promise<void> {
  const { index, waitMs } = parseBlocking(req.query);
  if (index === undefined) return;
  // An index ahead of the store (one read before a restore from backup) would never be passed:
  // answer at once with the current, lower index, which the client adopts (Consul: reset the
  // index when it goes backwards) instead of holding it for the full wait.
  if (index > ctx.tracker.revision && index > (await ctx.store.revision())) return;
  const release = ctx.slots.acquire(`blocking query on ${req.path}`);
  try {
    await ctx.tracker.wait(prefix, index, waitMs, req.signal, exact);
  } finally {
    release();
  }
}

/** `?name=1`, `?name=true`, or a bare `?name` are all true. */
export function flag(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  return v !== null && v !== '0' && v !== 'false';
}
