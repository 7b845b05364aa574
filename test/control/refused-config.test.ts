/**
 * Issue 10, "config that is refused stays refused": a real control plane (SQLite store in a
 * temp dir), real sidecars steered by it, real apps. The API refuses what a proxy would refuse;
 * a policy that reaches proxies anyway (stored before this check existed) is refused by every
 * update that carries it, not only the first, and the refusal stays visible in
 * `GET /v1/proxies`, the sidecar's admin `/config` and `hexmesh check` until a good version
 * replaces it.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlPlane } from '../../src/control/control-plane.ts';
import {
  startControlledProxy,
  type ControlledProxy,
} from '../../src/proxy/control-client/controlled-proxy.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS } from '../../src/store/store.ts';
import { runCli } from '../support/cli.ts';
import { startHttpServer } from '../support/mesh.ts';
import { until } from './discovery-support.ts';

const any = { address: '127.0.0.1', port: 0 };
const FAST = { backoff: { initial: 50, max: 500 }, log: () => {} };

interface ProxyStatus {
  id: string;
  version: number;
  acked: number;
  nack?: { version: number; error: string };
}

const policy = (circuitBreaker: Record<string, unknown>) => ({
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'TrafficPolicy',
  metadata: { name: 'reviews-cb', namespace: 'default' },
  spec: { targetRef: { kind: 'Service', name: 'reviews' }, circuitBreaker },
});

function get(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('issue 10: refused config stays refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-refused-'));
  let cp: ControlPlane;
  let store: SqliteStore;
  let url: string;
  const apps: { close(): Promise<void> }[] = [];
  const proxies: ControlledProxy[] = [];

  const sidecar = async (service: string, id: string, appPort: number, ready = true) => {
    const p = await startControlledProxy({
      control: [url],
      settings: {
        service,
        inbound: any,
        outbound: any,
        admin: any,
        drainTimeout: '1s',
        app: { port: appPort },
      },
      id,
      client: FAST,
    });
    proxies.push(p);
    if (ready) await p.client.firstConfig;
    return p;
  };
  const status = async (id: string): Promise<ProxyStatus | undefined> =>
    ((await (await fetch(`${url}/v1/proxies`)).json()) as ProxyStatus[]).find((p) => p.id === id);

  before(async () => {
    store = await SqliteStore.open(join(dir, 'hexmesh.db'), { synchronous: 'normal' });
    cp = new ControlPlane({ listen: { address: '127.0.0.1', port: 0 }, store });
    url = `http://127.0.0.1:${(await cp.start()).port}`;
  });

  after(async () => {
    for (const p of proxies) await p.close();
    await cp.destroy();
    await store.close();
    for (const s of apps) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the API refuses a policy the proxy would refuse, naming the field (PUT and apply)', async () => {
    const put = await fetch(`${url}/v1/resources/TrafficPolicy/default/reviews-cb`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(policy({ window: '0s' })),
    });
    assert.equal(put.status, 400);
    const body = (await put.json()) as { error: { problems?: { path: string; message: string }[] } };
    const text = JSON.stringify(body);
    assert.match(text, /spec\.circuitBreaker/);
    assert.match(text, /refused by the proxy: window must be > 0/);
    const apply = await fetch(`${url}/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        policy({ window: '10s' }),
        {
          ...policy({}),
          metadata: { name: 'bad-outlier', namespace: 'default' },
          spec: {
            targetRef: { name: 'reviews' },
            outlierDetection: { baseEjectionTime: '5m', maxEjectionTime: '1m' },
          },
        },
      ]),
    });
    assert.equal(apply.status, 400);
    assert.match(await apply.text(), /\[1\]\.spec\.outlierDetection.*maxEjectionTime/);
    assert.equal((await store.range(`${KEYS.resources}TrafficPolicy/`)).kvs.length, 0, 'nothing written');
  });

  it('a stored policy every proxy refuses stays refused across unrelated updates, visibly', async () => {
    for (const name of ['reviews', 'web']) {
      const app = await startHttpServer((_q, r) => r.end(name));
      apps.push(app);
      if (name === 'reviews') await sidecar('reviews', 'reviews-1', app.port);
      else await sidecar('web', 'web-1', app.port);
    }
    const web = proxies.find((p) => p.id === 'web-1')!;
    // Subscribe web to reviews (lazily, on the first call) and check it is served.
    assert.equal(await get(web.addr.outbound.port, 'reviews'), 200);

    // As an old control plane (or a restored backup) could hold it: written to the store directly.
    await store.put(
      KEYS.resource('TrafficPolicy', 'default', 'reviews-cb'),
      JSON.stringify(policy({ window: 0 })),
    );
    const first = await until(async () => (await status('web-1'))?.nack, 5000, 'first nack');
    assert.match(first.error, /window must be > 0/);
    assert.match(web.client.lastError ?? '', /window must be > 0/);

    // An unrelated change: a second reviews instance. Its delta carries the same bad policy.
    // (Its own sidecar refuses its first snapshot, which holds that policy: never ready.)
    const app2 = await startHttpServer((_q, r) => r.end('reviews-2'));
    apps.push(app2);
    const r2 = await sidecar('reviews', 'reviews-2', app2.port, false);
    const s = await until(
      async () => {
        const st = await status('web-1');
        return st &&
          st.version > first.version &&
          (st.acked === st.version || st.nack?.version === st.version)
          ? st
          : undefined;
      },
      5000,
      'web answered the endpoint change',
    );
    assert.equal(s.nack?.version, s.version, `refused again, not acked: ${JSON.stringify(s)}`);
    assert.ok(s.acked < first.version, 'the bad version was never acked');
    assert.ok(!web.proxy.config.resources.some((r) => r.kind === 'TrafficPolicy'), 'bad policy not in force');
    assert.equal(web.proxy.rejected?.version, s.version);
    // The last good config keeps serving.
    assert.equal(await get(web.addr.outbound.port, 'reviews'), 200);

    // Visible in the sidecar's own admin /config ...
    const dump = (await (await fetch(`http://127.0.0.1:${web.addr.admin.port}/config`)).json()) as {
      rejected?: { version: number; error: string };
    };
    assert.equal(dump.rejected?.version, s.version);
    assert.match(dump.rejected!.error, /window must be > 0/);
    // ... and in `hexmesh check`: not "in sync".
    const check = await runCli(['check', '-o', 'json', '--control', url]);
    assert.notEqual(check.code, 0, check.stdout);
    const results = JSON.parse(check.stdout) as { name: string; status: string; message: string }[];
    const sync = results.filter((c) => c.name === 'proxies-in-sync');
    assert.ok(
      sync.some((c) => c.status === 'fail' && /web-1.*rejected version/.test(c.message)),
      JSON.stringify(sync),
    );
    assert.ok(results.some((c) => c.name === 'rejected-configs' && c.status === 'fail'));
    // The stored resource itself is named, even with no proxy connected to refuse it.
    const stored = results.find((c) => c.name === 'config-references');
    assert.equal(stored?.status, 'fail', JSON.stringify(stored));
    assert.match(
      stored!.message,
      /stored TrafficPolicy\/default\/reviews-cb does not validate.*window must be > 0/,
    );

    // A good version replaces it: acked, and the refusal is gone everywhere.
    const fix = await fetch(`${url}/v1/resources/TrafficPolicy/default/reviews-cb`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(policy({ window: '10s' })),
    });
    assert.ok(fix.ok, await fix.text());
    const ok = await until(
      async () => {
        const st = await status('web-1');
        return st && !st.nack && st.acked === st.version && st.version > s.version ? st : undefined;
      },
      5000,
      'ack of the good version',
    );
    assert.ok(ok);
    assert.equal(web.proxy.rejected, undefined);
    await until(() => r2.client.applied > 0, 5000, 'the new reviews sidecar takes the good version');
    assert.ok(web.proxy.config.resources.some((r) => r.kind === 'TrafficPolicy'));
    const dump2 = (await (await fetch(`http://127.0.0.1:${web.addr.admin.port}/config`)).json()) as {
      rejected?: unknown;
    };
    assert.equal(dump2.rejected, undefined);
    // The new reviews sidecar's instance reaches the catalog a moment after its config (on a
    // loaded machine, after the first `check`): wait for every check to clear.
    const names = ['proxies-in-sync', 'rejected-configs', 'config-references'];
    let after: { name: string; status: string }[] = [];
    const cleared = await until(
      async () => {
        after = JSON.parse((await runCli(['check', '-o', 'json', '--control', url])).stdout) as typeof after;
        return after.filter((c) => names.includes(c.name)).every((c) => c.status === 'ok') || undefined;
      },
      15_000,
      'hexmesh check to clear',
    ).catch(() => false);
    for (const name of names)
      assert.ok(
        cleared && after.filter((c) => c.name === name).every((c) => c.status === 'ok'),
        `${name}: ${JSON.stringify(after.filter((c) => c.name === name))}`,
      );
  });
});
