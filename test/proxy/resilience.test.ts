/**
 * Resilience end to end: real app servers behind real sidecars, one client sidecar in front,
 * real HTTP requests. Each test says what would fail without the feature it proves.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { metricValue, policy, serviceEntry, startClient, startInstance } from '../support/cluster.ts';

test('killing one of three upstreams under load: every GET still succeeds, the dead one is ejected', async (t) => {
  // Without connect-failure/reset retries the requests in flight to (or pooled on) the killed
  // instance fail with 502; without outlier ejection the metric assertion fails.
  const instances = await Promise.all(
    [0, 1, 2].map((i) => startInstance('catalog', (_req, res) => res.end(`instance ${i}`))),
  );
  const client = await startClient([serviceEntry('catalog', instances)], [
    policy('catalog-lb', 'catalog', {
      // Round robin keeps sending to the dead endpoint until it is ejected, so the test
      // exercises retries and ejection rather than peak-EWMA steering away by latency.
      loadBalancer: { type: 'roundRobin' },
      outlierDetection: { consecutiveGatewayErrors: 2, maxEjectionPercent: 50 },
    }),
  ]);
  t.after(async () => {
    await client.close();
    await Promise.all(instances.map((i) => i.kill()));
  });

  const total = 600;
  const concurrency = 8;
  const deadline = Date.now() + 15_000;
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let started = 0;
  let killed: Promise<void> | undefined;
  const worker = async (): Promise<void> => {
    while (started < total && Date.now() < deadline) {
      const n = started++;
      if (n === total / 3) killed = instances[1].kill();
      const r = await request(`${client.outboundUrl}/item/${n}`, { headers: { host: 'catalog' } });
      const body = await r.body.text();
      statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
      if (r.statusCode !== 200 && failures.length < 5)
        failures.push(`${r.statusCode} ${String(r.headers['x-hexmesh-error'])} ${body.trim()}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await killed;

  assert.equal(started, total, 'the load loop ran out of time');
  assert.deepEqual([...statuses], [[200, total]], `non-200 answers: ${failures.join(' | ')}`);
  assert.ok(
    (await metricValue(client.adminUrl, 'hexmesh_outlier_ejections_total', { dst_service: 'catalog' })) >= 1,
    'no outlier ejection recorded',
  );
  assert.ok(
    (await metricValue(client.adminUrl, 'hexmesh_retries_total', { dst_service: 'catalog' })) >= 1,
    'no retry recorded',
  );
});
