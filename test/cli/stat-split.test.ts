/**
 * Issue 15: golden signals per version and per instance. Two versions of `ratings` (v1 all
 * good, v2 failing every other request) behind their own real sidecars, scraped by a real
 * control plane; `hexmesh stat --by version|instance` (a real CLI process) and the edges
 * view's version breakdown must tell them apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../support/cli.ts';
import { call, eventually } from '../control/helpers.ts';
import { startCanaryMesh } from './canary-mesh-support.ts';

test(
  'issue 15: hexmesh stat --by version / --by instance splits a service by what served it',
  { timeout: 90_000 },
  async () => {
    const m = await startCanaryMesh();
    try {
      await m.v1(30);
      await m.v2(10);
      await eventually(
        'the load in the views',
        async () => {
          const r = await call(m.cp.url, 'GET', '/v1/stats/services?service=ratings');
          return r.body.services?.[0]?.requests === 40;
        },
        20_000,
      );
      const json = await runCli([
        'stat',
        'svc/ratings',
        '-w',
        '10m',
        '--by',
        'version',
        '-o',
        'json',
        '--control',
        m.cp.url,
      ]);
      assert.equal(json.code, 0, json.stderr);
      const view = JSON.parse(json.stdout);
      assert.equal(view.by, 'version');
      assert.deepEqual(
        view.services.map(
          (s: { version: string; requests: number; successRate: number; instances: number }) => [
            s.version,
            s.requests,
            s.successRate,
            s.instances,
          ],
        ),
        [
          ['v1', 30, 1, 1],
          ['v2', 10, 0.5, 1],
        ],
      );
      for (const s of view.services) assert.notEqual(s.latencyMs.p99, null);

      const table = await runCli(['stat', 'ratings', '-w', '10m', '--by', 'version', '--control', m.cp.url]);
      assert.equal(table.code, 0, table.stderr);
      const lines = table.stdout.trimEnd().split('\n');
      assert.match(
        lines[0],
        /^NAMESPACE\s+SERVICE\s+VERSION\s+INSTANCES\s+SUCCESS\s+RPS\s+P50\s+P95\s+P99\s+MTLS$/,
      );
      assert.match(lines[1], /^default\s+ratings\s+v1\s+1\s+100\.00%\s/);
      assert.match(lines[2], /^default\s+ratings\s+v2\s+1\s+50\.00%\s/);
      assert.equal(lines.length, 3);

      const inst = await runCli(['stat', 'ratings', '-w', '10m', '--by', 'instance', '--control', m.cp.url]);
      assert.equal(inst.code, 0, inst.stderr);
      assert.match(inst.stdout, /^NAMESPACE\s+SERVICE\s+INSTANCE\s+INSTANCES/);
      assert.match(inst.stdout, /^default\s+ratings\s+ratings-v1\s+1\s+100\.00%/m);
      assert.match(inst.stdout, /^default\s+ratings\s+ratings-v2\s+1\s+50\.00%/m);

      const rev = await runCli([
        'stat',
        'ratings',
        '-w',
        '10m',
        '--by',
        'revision',
        '-o',
        'json',
        '--control',
        m.cp.url,
      ]);
      assert.equal(rev.code, 0, rev.stderr);
      assert.deepEqual(
        JSON.parse(rev.stdout).services.map((s: { revision: string }) => s.revision),
        ['1', '2'],
      );

      // The edge client → ratings, split by the destination's version (the topology's canary view).
      const edges = await call(m.cp.url, 'GET', '/v1/stats/edges?by=version&window=10m');
      assert.equal(edges.status, 200);
      const edge = edges.body.edges.find(
        (e: { src: string; dst: string }) => e.src === 'client' && e.dst === 'ratings',
      );
      assert.deepEqual(
        edge.split.map((p: { value: string; requests: number; successRate: number }) => [
          p.value,
          p.requests,
          p.successRate,
        ]),
        [
          ['v1', 30, 1],
          ['v2', 10, 0.5],
        ],
      );
      const wide = await runCli(['edges', '-w', '10m', '--by', 'version', '--control', m.cp.url]);
      assert.equal(wide.code, 0, wide.stderr);
      assert.match(wide.stdout, /^default\s+client\s+ratings\s+v1\s+100\.00%/m);
      assert.match(wide.stdout, /^default\s+client\s+ratings\s+v2\s+50\.00%/m);

      const bad = await runCli(['stat', '--by', 'colour', '--control', m.cp.url]);
      assert.equal(bad.code, 2, bad.stderr);
      const badApi = await call(m.cp.url, 'GET', '/v1/stats/services?by=colour');
      assert.equal(badApi.status, 400);
      const prom = await runCli(['stat', '--by', 'version', '--prometheus', 'http://127.0.0.1:1']);
      assert.equal(prom.code, 2, prom.stderr);
      assert.match(prom.stderr, /--by needs the control plane/);
    } finally {
      await m.close();
    }
  },
);
