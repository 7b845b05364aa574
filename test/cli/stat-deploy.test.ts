/**
 * Issue 13: `hexmesh stat deploy[/NAME]` and `ns/NAME`, as `linkerd viz stat deploy|ns`.
 * Two Deployments of `ratings` behind their own real sidecars, scraped by a real control
 * plane: `ratings-v1`'s instance registered as an injected sidecar registers itself (the
 * `hexmesh.io/pod` label, a Deployment's pod name), `ratings-v2`'s carrying the labels an
 * EndpointSlice endpoint gets (`hexmesh.io/deployment`, `hexmesh.io/replicaset`). A second
 * control plane whose instances belong to no Deployment (as `hexmesh up`'s) refuses
 * `deploy/NAME` with exit 2, naming what to ask instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../support/cli.ts';
import { call, eventually, startCp } from '../control/helpers.ts';
import { startRatingsMesh } from './canary-mesh-support.ts';

test(
  'issue 13: hexmesh stat deploy / deploy/NAME / ns/NAME from the instances Deployments',
  { timeout: 120_000 },
  async () => {
    const closers: (() => Promise<unknown>)[] = [];
    try {
      const mesh = await startRatingsMesh([
        {
          id: 'ratings-v1-inst',
          callerId: 'client-of-ratings-v1',
          failEvery: 0,
          labels: { 'hexmesh.io/pod': 'ratings-v1-6c8f7b9d4-qw7rt' },
        },
        {
          id: 'ratings-v2-inst',
          callerId: 'client-of-ratings-v2',
          failEvery: 2,
          labels: {
            'hexmesh.io/pod': '10-1-0-7',
            'hexmesh.io/deployment': 'ratings-v2',
            'hexmesh.io/replicaset': 'ratings-v2-5b7f6d4c9',
          },
        },
      ]);
      closers.push(() => mesh.close());
      const { cp } = mesh;
      const [v1, v2] = mesh.callers;
      await v1(30);
      await v2(10);
      await eventually(
        'the load in the views',
        async () => {
          const r = await call(cp.url, 'GET', '/v1/stats/services?service=ratings');
          return r.body.services?.[0]?.requests === 40;
        },
        30_000,
      );

      const api = await call(cp.url, 'GET', '/v1/stats/services?by=deployment&window=10m&service=ratings');
      assert.equal(api.status, 200);
      assert.deepEqual(
        api.body.services.map((s: { deployment: string; requests: number }) => [s.deployment, s.requests]),
        [
          ['ratings-v1', 30],
          ['ratings-v2', 10],
        ],
      );
      const edges = await call(cp.url, 'GET', '/v1/stats/edges?by=deployment&window=10m');
      const edge = edges.body.edges.find(
        (e: { src: string; dst: string }) => e.src === 'client' && e.dst === 'ratings',
      );
      assert.deepEqual(
        edge.split.map((p: { value: string; requests: number }) => [p.value, p.requests]),
        [
          ['ratings-v1', 30],
          ['ratings-v2', 10],
        ],
      );

      // Every Deployment: the client's instances belong to none, so they are not rows.
      const all = await runCli(['stat', 'deploy', '-w', '10m', '-o', 'json', '--control', cp.url]);
      assert.equal(all.code, 0, all.stderr);
      const view = JSON.parse(all.stdout);
      assert.equal(view.by, 'deployment');
      assert.deepEqual(
        view.services.map(
          (s: { service: string; deployment: string; requests: number; successRate: number }) => [
            s.service,
            s.deployment,
            s.requests,
            s.successRate,
          ],
        ),
        [
          ['ratings', 'ratings-v1', 30, 1],
          ['ratings', 'ratings-v2', 10, 0.5],
        ],
      );
      const one = await runCli([
        'stat',
        'deployment/ratings-v2',
        '-n',
        'default',
        '-w',
        '10m',
        '--control',
        cp.url,
      ]);
      assert.equal(one.code, 0, one.stderr);
      const lines = one.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^NAMESPACE\s+SERVICE\s+DEPLOYMENT\s+INSTANCES\s+SUCCESS\s+RPS/);
      assert.match(lines[1], /^default\s+ratings\s+ratings-v2\s+1\s+50\.00%\s/);
      assert.equal(lines.length, 2);
      const otherNs = await runCli(['stat', 'deploy', '-n', 'shop', '-o', 'json', '--control', cp.url]);
      assert.equal(otherNs.code, 0, otherNs.stderr);
      assert.deepEqual(JSON.parse(otherNs.stdout).services, []);
      const missing = await runCli(['stat', 'deploy/nope', '--control', cp.url]);
      assert.equal(missing.code, 4, missing.stderr);
      assert.match(missing.stderr, /no figures for deployment "nope"/);

      // ns/NAME: that namespace's services, as --namespace.
      const ns = await runCli(['stat', 'ns/default', '-w', '10m', '-o', 'json', '--control', cp.url]);
      assert.equal(ns.code, 0, ns.stderr);
      assert.deepEqual(
        JSON.parse(ns.stdout).services.map((s: { service: string }) => s.service),
        ['client', 'ratings'],
      );
      const nsOther = await runCli(['stat', 'ns/shop', '-o', 'json', '--control', cp.url]);
      assert.deepEqual(JSON.parse(nsOther.stdout).services, []);
      const clash = await runCli(['stat', 'ns/default', '-n', 'shop', '--control', cp.url]);
      assert.equal(clash.code, 2, clash.stderr);

      // A control plane whose instances belong to no Deployment (the local runtime's).
      const local = await startCp({ metrics: { intervalMs: 200 } });
      closers.push(() => local.close());
      const reg = await call(local.url, 'PUT', '/v1/catalog/register', {
        id: 'web-1',
        service: 'web',
        address: '127.0.0.1',
        port: 1,
        labels: { version: 'v1' },
        ttl: '60s',
      });
      assert.equal(reg.status < 300, true, JSON.stringify(reg.body));
      await eventually(
        'the instance in the views',
        async () => (await call(local.url, 'GET', '/v1/stats/services')).body.services?.length > 0,
        20_000,
      );
      const refused = await runCli(['stat', 'deploy/web', '--control', local.url]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /belongs to a Kubernetes Deployment/);
      assert.match(refused.stderr, /hexmesh stat svc\/NAME --by version/);
    } finally {
      for (const fn of closers) await fn().catch(() => {});
    }
  },
);
