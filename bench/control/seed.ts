/**
 * Seeds the catalog for the control-plane benchmark: `services × instances` endpoints
 * written straight into the store (before the control plane starts, for the embedded
 * store whose file one process owns) in the JSON shape the catalog's `register` writes,
 * without a lease (the REST API leases every instance, and 10,000 heartbeats would be a
 * load of their own). Every instance is `passing` with a sidecar (`meshPort`).
 */
import { performance } from 'node:perf_hooks';
import { KEYS, type Store } from '../../src/store/store.ts';

export interface SeedShape {
  services: number;
  instancesPerService: number;
}

/** `svc-0042`: the service names the seed and the subscribers agree on. */
export function serviceName(i: number): string {
  return `svc-${String(i).padStart(4, '0')}`;
}

/** Write every instance; returns the seconds it took. `concurrency` writes are in flight at once. */
export async function seedCatalog(store: Store, shape: SeedShape, concurrency = 1): Promise<number> {
  const t0 = performance.now();
  const at = new Date().toISOString();
  const total = shape.services * shape.instancesPerService;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) {
      const n = next++;
      const s = Math.floor(n / shape.instancesPerService);
      const k = n % shape.instancesPerService;
      const service = serviceName(s);
      const id = `${service}-${k}`;
      const inst = {
        id,
        service,
        namespace: 'default',
        address: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
        port: 8080,
        meshPort: 4143,
        labels: { version: k % 2 ? 'v2' : 'v1', zone: `zone-${k % 3}` },
        checks: [],
        status: 'passing',
        registeredAt: at,
        statusChangedAt: at,
        lease: 0,
      };
      await store.put(KEYS.instance('default', service, id), JSON.stringify(inst));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  return (performance.now() - t0) / 1000;
}
