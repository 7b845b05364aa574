/**
 * A proxy sends its app's status right behind its hello. Over a store with real latency
 * (etcd across hosts: the multi-host test, docs/multi-host.md) the registration is still in
 * flight when the status arrives; the status must land after it, not fail as "instance not
 * found" and leave the instance critical for good.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { attachDiscovery } from '../../src/control/discovery/discovery-server.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS } from '../../src/store/store.ts';
import { RawClient, until } from './discovery-support.ts';
import { SlowStore } from './slow-store.ts';

test('a status sent right after hello lands after the (slow) registration', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-disc-order-'));
  const sqlite = await SqliteStore.open(join(dir, 'hexmesh.db'), { synchronous: 'normal' });
  const store = new SlowStore(sqlite);
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const discovery = attachDiscovery({ httpServer: server, store }, {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await discovery.ready;
  t.after(async () => {
    await discovery.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // The lease grant (first step of the registration) takes as long as a slow etcd round trip.
  store.grantDelayMs = 300;
  const c = new RawClient((server.address() as AddressInfo).port);
  await c.opened;
  c.hello({ id: 'e1', service: 'echo', appPort: 8080, checks: [{ name: 'app', type: 'http', path: '/' }] });
  c.send({ type: 'status', status: 'passing', output: 'HTTP 200 from /' });
  const key = KEYS.instance('default', 'echo', 'e1');
  await until(
    async () => {
      const kv = await sqlite.get(key);
      return kv && JSON.parse(kv.value).status === 'passing';
    },
    5000,
    'the instance passing',
  );
  c.close(1000);
});
