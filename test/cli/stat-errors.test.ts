/**
 * Issue 15: a service's recent errors come from the control plane's history, not from what
 * a viewer saw since it opened. ratings v2 fails every other request with the app's 503;
 * ratings v3's sidecar finds no app behind it and makes the failure up itself (an
 * `x-hexmesh-error` kind). A real control plane scrapes the real sidecars; the errors view
 * and `hexmesh stat svc/ratings --errors` (a real CLI process) list both, per side, status,
 * kind and version, with counts and when each was last seen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { freePort } from '../../src/runtime/ports.ts';
import type { ErrorRow, ErrorsView } from '../../src/control/metrics/errors-view.ts';
import { runCli } from '../support/cli.ts';
import { call, eventually } from '../control/helpers.ts';
import { startPair } from '../support/mesh.ts';
import { startCanaryMesh } from './canary-mesh-support.ts';

test(
  'issue 15: /v1/stats/errors and hexmesh stat svc/NAME --errors list failures from the server history',
  { timeout: 120_000 },
  async () => {
    const m = await startCanaryMesh();
    // v3: a sidecar with nothing listening behind it.
    const dead = await startPair({ service: 'ratings', appPort: await freePort() });
    try {
      for (const [id, service, admin, labels] of [
        ['ratings-v3', 'ratings', dead.server.adminUrl, { version: 'v3' }],
        ['client-v3', 'client', dead.client.adminUrl, {}],
      ] as const)
        await call(m.cp.url, 'PUT', '/v1/catalog/register', {
          id,
          service,
          address: '127.0.0.1',
          port: 1,
          adminAddress: admin.replace('http://', ''),
          labels,
          ttl: '60s',
        });
      const rounds = m.cp.cp.metrics.rounds;
      await eventually('v3 scraped twice', async () => m.cp.cp.metrics.rounds >= rounds + 2, 20_000);

      const before = Date.now();
      await m.v1(10);
      await m.v2(10); // 5 × 503 from the app
      for (let i = 0; i < 3; i++) {
        const r = await request(`${dead.client.outboundUrl}/r`, { headers: { host: 'ratings' } });
        await r.body.dump();
        assert.ok(r.statusCode >= 500, `v3 answered ${r.statusCode}`);
      }

      let view: ErrorsView | undefined;
      await eventually(
        'the errors in the history',
        async () => {
          const r = await call<ErrorsView>(m.cp.url, 'GET', '/v1/stats/errors?service=ratings&window=10m');
          view = r.body;
          return r.status === 200 && view.total === 8 && view.errors.some((e) => e.kind !== '');
        },
        30_000,
      );
      const rows = view!.errors;
      const targets = await call(m.cp.url, 'GET', '/v1/stats/targets');
      assert.ok(targets.body.errorSeries >= 4, JSON.stringify(targets.body));
      assert.equal(targets.body.errorDroppedSamples, 0);
      const find = (p: Partial<ErrorRow>) =>
        rows.filter((e) => Object.entries(p).every(([k, v]) => e[k as keyof ErrorRow] === v));
      // The app's 503s of v2, seen by v2's own sidecar and by its caller's.
      const v2 = find({ side: 'server', version: 'v2', status: '503', kind: '' });
      assert.equal(v2.length, 1, JSON.stringify(rows));
      assert.equal(v2[0].count, 5);
      assert.equal(v2[0].src, 'client');
      assert.deepEqual(v2[0].instances, ['ratings-v2']);
      assert.equal(find({ side: 'client', status: '503', kind: '', version: '' })[0]?.count, 5);
      // v3's failures were made up by its sidecar: a status row and a kind row.
      const v3 = find({ side: 'server', version: 'v3', kind: '' });
      assert.equal(v3.length, 1, JSON.stringify(rows));
      assert.equal(v3[0].count, 3);
      assert.equal(v3[0].status, '502');
      const kind = find({ side: 'server', version: 'v3', status: '' });
      assert.equal(kind.length, 1, JSON.stringify(rows));
      assert.equal(kind[0].count, 3);
      assert.equal(kind[0].kind, 'connect-failed');
      // Nothing from v1, which never failed; each last seen during this test.
      assert.equal(find({ version: 'v1' }).length, 0);
      for (const e of rows) assert.ok(e.lastSeen >= before && e.lastSeen <= Date.now(), JSON.stringify(e));

      const table = await runCli(['stat', 'svc/ratings', '--errors', '-w', '10m', '--control', m.cp.url]);
      assert.equal(table.code, 0, table.stderr);
      const lines = table.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^LAST SEEN\s+SIDE\s+CALLER\s+STATUS\s+GRPC\s+KIND\s+VERSION\s+COUNT$/);
      assert.match(table.stdout, /^\d+s ago\s+server\s+client\s+503\s+-\s+-\s+v2\s+5$/m);
      assert.match(
        table.stdout,
        new RegExp(`^\\d+s ago\\s+server\\s+-\\s+-\\s+-\\s+${kind[0].kind}\\s+v3\\s+3$`, 'm'),
      );
      const wide = await runCli([
        'stat',
        'ratings',
        '--errors',
        '-w',
        '10m',
        '-o',
        'wide',
        '--control',
        m.cp.url,
      ]);
      assert.equal(wide.code, 0, wide.stderr);
      assert.match(wide.stdout, /\s+v2\s+5\s+default\s+ratings-v2$/m);
      const json = await runCli([
        'stat',
        'ratings',
        '--errors',
        '-w',
        '10m',
        '-o',
        'json',
        '--control',
        m.cp.url,
      ]);
      assert.equal(json.code, 0, json.stderr);
      assert.equal(JSON.parse(json.stdout).total, 8);

      // A known service without failures: no rows, exit 0; an unknown one: exit 4.
      const clean = await runCli(['stat', 'svc/client', '--errors', '-w', '10m', '--control', m.cp.url]);
      assert.equal(clean.code, 0, clean.stderr);
      assert.equal(clean.stdout.trimEnd().split('\n').length, 1, clean.stdout);
      const unknown = await runCli(['stat', 'svc/nosuch', '--errors', '--control', m.cp.url]);
      assert.equal(unknown.code, 4, unknown.stderr);
      assert.match(unknown.stderr, /no figures for service "nosuch"/);
      const none = await runCli(['stat', '--errors', '--control', m.cp.url]);
      assert.equal(none.code, 2, none.stderr);
      assert.match(none.stderr, /--errors needs a service/);
      const missing = await call(m.cp.url, 'GET', '/v1/stats/errors');
      assert.equal(missing.status, 400);
    } finally {
      await dead.close();
      await m.close();
    }
  },
);
