/**
 * Which proxies serve a service (or are one instance): catalog instances with a sidecar
 * admin address, and connected proxies under `/hexmesh/proxies/` (the same sources as the
 * metrics collector and Prometheus SD). Used by tap fan-in and `diagnose proxy`.
 */
import { KEYS } from '../../store/store.ts';
import type { ApiContext } from './context.ts';

export interface ProxyTarget {
  id: string;
  service: string;
  namespace: string;
  adminAddress: string;
}

/**
 * Proxies matching `service` (and `namespace` when given) or, when `instance` is given,
 * that one instance id (whatever its service). De-duplicated by admin address.
 */
export async function findProxies(
  ctx: ApiContext,
  q: { service?: string; namespace?: string; instance?: string },
): Promise<ProxyTarget[]> {
  const [instances, proxies] = await Promise.all([
    ctx.store.range(KEYS.instances),
    ctx.store.range(KEYS.proxies),
  ]);
  const out = new Map<string, ProxyTarget>();
  for (const kv of [...instances.kvs, ...proxies.kvs]) {
    let p: Partial<ProxyTarget>;
    try {
      p = JSON.parse(kv.value) as Partial<ProxyTarget>;
    } catch {
      continue;
    }
    if (typeof p.adminAddress !== 'string' || typeof p.id !== 'string' || typeof p.service !== 'string')
      continue;
    const namespace = typeof p.namespace === 'string' ? p.namespace : 'default';
    if (q.instance !== undefined) {
      if (p.id !== q.instance) continue;
    } else if (p.service !== q.service) continue;
    if (q.namespace !== undefined && namespace !== q.namespace) continue;
    if (!out.has(p.adminAddress))
      out.set(p.adminAddress, { id: p.id, service: p.service, namespace, adminAddress: p.adminAddress });
  }
  return [...out.values()];
}
