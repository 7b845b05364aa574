/**
 * Test support for the metrics views: a real two-sidecar mesh (client → ratings, the app
 * failing every 10th request with a 500) registered in a real control plane that scrapes
 * it, and a bounded load generator.
 */
import { request } from 'undici';
import { startPair, startHttpServer, type Pair } from '../support/mesh.ts';
import { call, eventually, startCp, type TestCp } from './helpers.ts';
import type { ControlPlaneOptions } from '../../src/control/control-plane.ts';

export interface StatsMesh {
  cp: TestCp;
  pair: Pair;
  /** `host:port` of the admin listeners. */
  serverAdmin: string;
  clientAdmin: string;
  /** Send `n` requests (4 at a time) through the client sidecar; returns the status counts. */
  load(n: number): Promise<Map<number, number>>;
  close(): Promise<void>;
}

export async function startStatsMesh(cpOpts: Partial<ControlPlaneOptions> = {}): Promise<StatsMesh> {
  let seen = 0;
  const app = await startHttpServer((req, res) => {
    req.resume();
    seen++;
    res.statusCode = seen % 10 === 0 ? 500 : 200;
    res.end('ok');
  });
  const pair = await startPair({ service: 'ratings', appPort: app.port });
  const cp = await startCp({ metrics: { intervalMs: 200 }, ...cpOpts });
  const serverAdmin = pair.server.adminUrl.replace('http://', '');
  const clientAdmin = pair.client.adminUrl.replace('http://', '');
  const reg = (id: string, service: string, adminAddress: string) =>
    call(cp.url, 'PUT', '/v1/catalog/register', {
      id,
      service,
      address: '127.0.0.1',
      port: app.port,
      adminAddress,
      ttl: '60s',
    });
  await reg('ratings-1', 'ratings', serverAdmin);
  await reg('client-1', 'client', clientAdmin);
  // Two full rounds: both targets are primed, so all later traffic is counted.
  const start = cp.cp.metrics.rounds;
  await eventually('two scrape rounds', async () => cp.cp.metrics.rounds >= start + 2, 10_000);
  return {
    cp,
    pair,
    serverAdmin,
    clientAdmin,
    async load(n) {
      const counts = new Map<number, number>();
      let next = 0;
      const deadline = Date.now() + 20_000;
      const worker = async () => {
        while (next < n && Date.now() < deadline) {
          next++;
          const r = await request(`${pair.client.outboundUrl}/r`, { headers: { host: 'ratings' } });
          await r.body.dump();
          counts.set(r.statusCode, (counts.get(r.statusCode) ?? 0) + 1);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      return counts;
    },
    async close() {
      await cp.close();
      await pair.close();
      await app.close();
    },
  };
}
