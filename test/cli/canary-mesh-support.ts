/**
 * Test support for per-version figures (issue 15): two versions of `ratings` — v1 always
 * answering 200, v2 failing every other request with a 503 — each behind its own real
 * sidecar pair, registered with `version` and `hexmesh.io/revision` labels in a real control
 * plane that scrapes every 200 ms. `v1(n)` / `v2(n)` send n requests through that version's
 * caller (service `client`), so the split of the edge client → ratings is known exactly.
 */
import { request } from 'undici';
import type { ControlPlaneOptions } from '../../src/control/control-plane.ts';
import { call, eventually, startCp, type TestCp } from '../control/helpers.ts';
import { startHttpServer, startPair } from '../support/mesh.ts';

export interface CanaryMesh {
  cp: TestCp;
  v1(n: number): Promise<void>;
  v2(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startCanaryMesh(metrics: ControlPlaneOptions['metrics'] = {}): Promise<CanaryMesh> {
  const closers: (() => Promise<unknown>)[] = [];
  const cp = await startCp({ metrics: { intervalMs: 200, ...metrics } });
  closers.push(() => cp.close());
  const version = async (v: string, failEvery: number) => {
    let seen = 0;
    const app = await startHttpServer((req, res) => {
      req.resume();
      seen++;
      res.statusCode = failEvery > 0 && seen % failEvery === 0 ? 503 : 200;
      res.end(v);
    });
    const pair = await startPair({ service: 'ratings', appPort: app.port });
    closers.unshift(
      () => app.close(),
      () => pair.close(),
    );
    const reg = (id: string, service: string, adminUrl: string, labels: Record<string, string>) =>
      call(cp.url, 'PUT', '/v1/catalog/register', {
        id,
        service,
        address: '127.0.0.1',
        port: app.port,
        adminAddress: adminUrl.replace('http://', ''),
        labels,
        ttl: '60s',
      });
    await reg(`ratings-${v}`, 'ratings', pair.server.adminUrl, {
      version: v,
      'hexmesh.io/revision': v.slice(1),
    });
    await reg(`client-${v}`, 'client', pair.client.adminUrl, {});
    return async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await request(`${pair.client.outboundUrl}/r`, { headers: { host: 'ratings' } });
        await r.body.dump();
      }
    };
  };
  const v1 = await version('v1', 0);
  const v2 = await version('v2', 2);
  const start = cp.cp.metrics.rounds;
  await eventually('two scrape rounds', async () => cp.cp.metrics.rounds >= start + 2, 10_000);
  return {
    cp,
    v1,
    v2,
    close: async () => {
      for (const fn of closers) await fn().catch(() => {});
    },
  };
}
