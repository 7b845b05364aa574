/**
 * Test support for per-version figures (issue 15): two versions of `ratings` — v1 always
 * answering 200, v2 failing every other request with a 503 — each behind its own real
 * sidecar pair, registered with `version` and `hexmesh.io/revision` labels in a real control
 * plane that scrapes every 200 ms. `v1(n)` / `v2(n)` send n requests through that version's
 * caller (service `client`), so the split of the edge client → ratings is known exactly.
 * `startRatingsMesh` is the same with the instances and their labels given (issue 13's
 * Deployments).
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
  const m = await startRatingsMesh(
    [
      {
        id: 'ratings-v1',
        callerId: 'client-v1',
        failEvery: 0,
        labels: { version: 'v1', 'hexmesh.io/revision': '1' },
      },
      {
        id: 'ratings-v2',
        callerId: 'client-v2',
        failEvery: 2,
        labels: { version: 'v2', 'hexmesh.io/revision': '2' },
      },
    ],
    metrics,
  );
  const [v1, v2] = m.callers;
  return { cp: m.cp, v1, v2, close: m.close };
}

/**
 * One `ratings` instance: its own app behind its own sidecar pair, whose client side is its
 * caller.
 */
export interface RatingsInstance {
  /** The `ratings` instance's catalog id; the app answers with it. */
  id: string;
  /** The catalog id of its caller (service `client`, no labels). */
  callerId: string;
  /** Every `failEvery`-th request is answered 503; 0: none. */
  failEvery: number;
  /** The `ratings` instance's catalog labels. */
  labels: Record<string, string>;
}

export interface RatingsMesh {
  cp: TestCp;
  /** By instance, in the order given: send n requests through its caller. */
  callers: ((n: number) => Promise<void>)[];
  close(): Promise<void>;
}

/**
 * `ratings` instances as given, registered in a real control plane that scrapes every 200 ms;
 * resolves once it has scraped twice.
 */
export async function startRatingsMesh(
  instances: RatingsInstance[],
  metrics: ControlPlaneOptions['metrics'] = {},
): Promise<RatingsMesh> {
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const fn of closers) await fn().catch(() => {});
  };
  try {
    const cp = await startCp({ metrics: { intervalMs: 200, ...metrics } });
    closers.push(() => cp.close());
    const instance = async ({ id, callerId, failEvery, labels }: RatingsInstance) => {
      let seen = 0;
      const app = await startHttpServer((req, res) => {
        req.resume();
        seen++;
        res.statusCode = failEvery > 0 && seen % failEvery === 0 ? 503 : 200;
        res.end(id);
      });
      const pair = await startPair({ service: 'ratings', appPort: app.port });
      closers.unshift(
        () => app.close(),
        () => pair.close(),
      );
      const reg = (regId: string, service: string, adminUrl: string, l: Record<string, string>) =>
        call(cp.url, 'PUT', '/v1/catalog/register', {
          id: regId,
          service,
          address: '127.0.0.1',
          port: app.port,
          adminAddress: adminUrl.replace('http://', ''),
          labels: l,
          ttl: '60s',
        });
      await reg(id, 'ratings', pair.server.adminUrl, labels);
      await reg(callerId, 'client', pair.client.adminUrl, {});
      return async (n: number) => {
        for (let i = 0; i < n; i++) {
          const r = await request(`${pair.client.outboundUrl}/r`, { headers: { host: 'ratings' } });
          await r.body.dump();
        }
      };
    };
    const callers: ((n: number) => Promise<void>)[] = [];
    for (const i of instances) callers.push(await instance(i));
    const start = cp.cp.metrics.rounds;
    await eventually('two scrape rounds', async () => cp.cp.metrics.rounds >= start + 2, 20_000);
    return { cp, callers, close };
  } catch (err) {
    await close();
    throw err;
  }
}
