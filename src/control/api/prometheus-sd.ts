/**
 * `GET /v1/sd/prometheus`: Prometheus HTTP service discovery — one target group per
 * registered instance (or connected proxy) with a sidecar admin address, so a Prometheus
 * with one `http_sd_configs` entry scrapes every sidecar.
 */
import { KEYS } from '../../store/store.ts';
import type { Router } from '../http/router.ts';
import type { Instance } from '../catalog/instance.ts';
import { blockIfAsked, type ApiContext } from './context.ts';

export interface SdTargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

export function prometheusSdRoutes(router: Router, ctx: ApiContext): void {
  router.add(
    'GET',
    '/v1/sd/prometheus',
    async (req) => {
      await blockIfAsked(ctx, req, KEYS.instances);
      const [instances, proxies] = await Promise.all([
        ctx.store.range(KEYS.instances),
        ctx.store.range(KEYS.proxies),
      ]);
      const groups: SdTargetGroup[] = [];
      const seen = new Set<string>();
      const add = (p: Partial<Instance>): void => {
        if (typeof p.adminAddress !== 'string' || seen.has(p.adminAddress)) return;
        seen.add(p.adminAddress);
        groups.push({
          targets: [p.adminAddress],
          labels: {
            __meta_hexmesh_service: String(p.service ?? ''),
            __meta_hexmesh_namespace: String(p.namespace ?? ''),
            __meta_hexmesh_instance: String(p.id ?? ''),
            __meta_hexmesh_version: String(p.labels?.version ?? ''),
          },
        });
      };
      for (const kv of instances.kvs) add(JSON.parse(kv.value) as Instance);
      // Connected proxies (written by the discovery stream) whose instance is not in the catalog.
      for (const kv of proxies.kvs) {
        try {
          add(JSON.parse(kv.value) as Partial<Instance>);
        } catch {}
      }
      return { json: groups, index: Math.max(instances.revision, proxies.revision) };
    },
    'catalog:read',
  );
}
