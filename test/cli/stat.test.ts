import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../support/cli.ts';
import { eventually, call } from '../control/helpers.ts';
import { startStatsMesh } from '../control/metrics-support.ts';

test(
  'hexmesh stat / edges / routes print the control plane views as tables and JSON',
  { timeout: 60_000 },
  async () => {
    const m = await startStatsMesh();
    try {
      await m.load(50);
      await eventually('the load in the views', async () => {
        const r = await call(m.cp.url, 'GET', '/v1/stats/services?service=ratings');
        return r.body.services?.[0]?.requests === 50;
      });
      const json = await runCli(['stat', '-o', 'json', '--control', m.cp.url]);
      assert.equal(json.code, 0, json.stderr);
      assert.equal(json.stderr, ''); // no progress line: stderr is not a terminal
      const view = JSON.parse(json.stdout);
      const ratings = view.services.find((s: { service: string }) => s.service === 'ratings');
      assert.equal(ratings.requests, 50);
      assert.equal(ratings.successRate, 0.9);

      const table = await runCli(['stat', 'ratings', '-w', '5m', '--control', m.cp.url]);
      assert.equal(table.code, 0, table.stderr);
      const lines = table.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^NAMESPACE\s+SERVICE\s+INSTANCES\s+SUCCESS\s+RPS\s+P50\s+P95\s+P99\s+MTLS$/);
      assert.equal(lines.length, 2);
      assert.match(lines[1], /^default\s+ratings\s+1\s+90\.00%\s+0\.17\s/); // 50 requests / 300 s

      const edges = await runCli(['edges', '--control', m.cp.url]);
      assert.equal(edges.code, 0, edges.stderr);
      assert.match(edges.stdout, /^default\s+client\s+ratings\s+90\.00%/m);

      const routes = await runCli(['routes', 'ratings', '-o', 'json', '--control', m.cp.url]);
      assert.equal(routes.code, 0, routes.stderr);
      assert.deepEqual(
        JSON.parse(routes.stdout).routes.map((r: { route: string; requests: number }) => [
          r.route,
          r.requests,
        ]),
        [['default', 50]],
      );

      const bad = await runCli(['stat', '-w', 'forever', '--control', m.cp.url]);
      assert.equal(bad.code, 2, bad.stderr);
    } finally {
      await m.close();
    }
  },
);

test(
  'hexmesh stat against an unreachable control plane fails with one clear line',
  { timeout: 30_000 },
  async () => {
    const r = await runCli(['stat', '--control', 'http://127.0.0.1:1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^hexmesh stat: cannot reach control plane at http:\/\/127\.0\.0\.1:1/);
    const p = await runCli(['stat', '--prometheus', 'http://127.0.0.1:1']);
    assert.equal(p.code, 1);
    assert.match(p.stderr, /^hexmesh stat: /);
  },
);
