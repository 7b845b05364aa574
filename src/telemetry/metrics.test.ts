import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import fc from 'fast-check';
import { OVERFLOW } from './cardinality-guard.ts';
import { ProxyMetrics } from './metrics.ts';
import { telemetryLayer } from './telemetry-layer.ts';
import { meshRequest, samples, scrape } from './test-support.ts';

test('the cardinality guard collapses label sets past the cap into one overflow series', async () => {
  const metrics = new ProxyMetrics({
    service: 'web',
    namespace: 'shop',
    maxSeriesPerMetric: 3,
    processMetrics: false,
  });
  const svc = telemetryLayer(metrics)(async () => ({ status: 200, headers: {}, body: null }));
  for (let i = 0; i < 5; i++) await svc(meshRequest({ dstService: `svc-${i}` }));
  // A series under the cap with new status codes: the 4th label set of requests_total overflows.
  const series = metrics.requestSeries('outbound', 'web', 'svc-0', 'shop/api', false);
  series.record(404, -1, 0.01);

  const text = (await scrape(metrics)).text;
  const o = OVERFLOW;
  assert.deepEqual(
    samples(text, 'hexmesh_requests_total').sort(),
    [
      `hexmesh_requests_total{direction="${o}",src_service="${o}",dst_service="${o}",route="${o}",status_code="${o}",grpc_status="${o}",tls="${o}"} 3`,
      ...[0, 1, 2].map(
        (i) =>
          `hexmesh_requests_total{direction="outbound",src_service="web",dst_service="svc-${i}",route="shop/api",status_code="200",grpc_status="",tls="false"} 1`,
      ),
    ].sort(),
  );
  assert.deepEqual(
    samples(text, 'hexmesh_request_duration_seconds_count').sort(),
    [
      `hexmesh_request_duration_seconds_count{direction="${o}",src_service="${o}",dst_service="${o}",route="${o}",tls="${o}"} 2`,
      ...[0, 1, 2].map(
        (i) =>
          `hexmesh_request_duration_seconds_count{direction="outbound",src_service="web",dst_service="svc-${i}",route="shop/api",tls="false"} ${i === 0 ? 2 : 1}`,
      ),
    ].sort(),
  );
  assert.deepEqual(samples(text, 'hexmesh_metric_overflow_total').sort(), [
    'hexmesh_metric_overflow_total{metric="hexmesh_request_duration_seconds"} 2',
    'hexmesh_metric_overflow_total{metric="hexmesh_requests_total"} 3',
  ]);
});

test('property: any label stream keeps each metric within cap + 1 series and loses no count', async () => {
  const label = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
  const record = fc.record({
    inbound: fc.boolean(),
    src: label,
    dst: label,
    route: fc.constantFrom('r1', 'r2', 'default'),
    tls: fc.boolean(),
    status: fc.constantFrom(200, 204, 404, 500, 503),
    grpc: fc.integer({ min: -1, max: 17 }),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 20 }),
      fc.array(record, { maxLength: 200 }),
      async (cap, recs) => {
        const metrics = new ProxyMetrics({
          service: 's',
          namespace: 'n',
          maxSeriesPerMetric: cap,
          processMetrics: false,
        });
        for (const r of recs) {
          metrics
            .requestSeries(r.inbound ? 'inbound' : 'outbound', r.src, r.dst, r.route, r.tls)
            .record(r.status, r.grpc, 0.002);
        }
        const counter = await metrics.registry.getSingleMetric('hexmesh_requests_total')!.get();
        const hist = await metrics.registry.getSingleMetric('hexmesh_request_duration_seconds')!.get();
        const counts = hist.values.filter(
          (v) => (v as { metricName?: string }).metricName === 'hexmesh_request_duration_seconds_count',
        );
        assert.ok(counter.values.length <= cap + 1, `${counter.values.length} counter series for cap ${cap}`);
        assert.ok(counts.length <= cap + 1, `${counts.length} histogram series for cap ${cap}`);
        assert.equal(
          counter.values.reduce((s, v) => s + v.value, 0),
          recs.length,
        );
        assert.equal(
          counts.reduce((s, v) => s + v.value, 0),
          recs.length,
        );
        // Distinct label sets under the cap are never merged.
        const distinct = new Set(recs.map((r) => [r.inbound, r.src, r.dst, r.route, r.tls].join()));
        if (distinct.size <= cap) assert.equal(counts.length, distinct.size);
      },
    ),
    { numRuns: 60 },
  );
});

test('connection, resilience, config and cert metrics export exact series', async () => {
  let wall = 1_000_000;
  const metrics = new ProxyMetrics({
    service: 'web',
    namespace: 'shop',
    processMetrics: false,
    wallNow: () => wall,
  });
  const a = metrics.tcpConnection('outbound', 'db');
  const b = metrics.tcpConnection('outbound', 'db');
  a.read(100);
  a.written(40);
  b.read(1);
  a.close();
  a.close();
  metrics.setCircuitState('api', 'open');
  metrics.setCircuitState('cart', 'half-open');
  metrics.recordOutlierEjection('api', 'consecutive-5xx');
  metrics.setEjectedEndpoints('api', 1);
  metrics.setConfigVersion(7);
  metrics.recordConfigRejection();

  let text = (await scrape(metrics)).text;
  assert.deepEqual(samples(text, 'hexmesh_tcp_connections_total'), [
    'hexmesh_tcp_connections_total{direction="outbound",peer="db"} 2',
  ]);
  assert.deepEqual(samples(text, 'hexmesh_tcp_open_connections'), [
    'hexmesh_tcp_open_connections{direction="outbound"} 1',
  ]);
  assert.deepEqual(samples(text, 'hexmesh_tcp_bytes_total').sort(), [
    'hexmesh_tcp_bytes_total{direction="outbound",peer="db",dir="read"} 101',
    'hexmesh_tcp_bytes_total{direction="outbound",peer="db",dir="write"} 40',
  ]);
  assert.deepEqual(samples(text, 'hexmesh_circuit_state').sort(), [
    'hexmesh_circuit_state{dst_service="api"} 2',
    'hexmesh_circuit_state{dst_service="cart"} 1',
  ]);
  assert.deepEqual(samples(text, 'hexmesh_outlier_ejections_total'), [
    'hexmesh_outlier_ejections_total{dst_service="api",reason="consecutive-5xx"} 1',
  ]);
  assert.deepEqual(samples(text, 'hexmesh_endpoint_ejected'), [
    'hexmesh_endpoint_ejected{dst_service="api"} 1',
  ]);
  assert.deepEqual(samples(text, 'hexmesh_config_version'), ['hexmesh_config_version 7']);
  assert.deepEqual(samples(text, 'hexmesh_config_rejections_total'), ['hexmesh_config_rejections_total 1']);
  assert.deepEqual(samples(text, 'hexmesh_proxy_info'), [
    'hexmesh_proxy_info{service="web",namespace="shop"} 1',
  ]);
  assert.ok(!text.includes('hexmesh_cert_expiry_seconds'), 'no certificate, no cert expiry series');

  metrics.setCertExpiry(wall + 3_600_000);
  wall += 600_000; // computed at scrape time
  text = (await scrape(metrics)).text;
  assert.deepEqual(samples(text, 'hexmesh_cert_expiry_seconds'), ['hexmesh_cert_expiry_seconds 3000']);
  metrics.setCertExpiry(null);
  assert.ok(!(await scrape(metrics)).text.includes('hexmesh_cert_expiry_seconds'));
});

test('process metrics carry the hexmesh_proxy_ prefix and two proxies in one process do not collide', async () => {
  const one = new ProxyMetrics({ service: 'one', namespace: 'a' });
  const two = new ProxyMetrics({ service: 'two', namespace: 'a' });
  one.setConfigVersion(1);
  two.setConfigVersion(2);
  const [t1, t2] = [(await scrape(one)).text, (await scrape(two)).text];
  assert.match(t1, /^hexmesh_proxy_process_cpu_user_seconds_total \d/m);
  assert.match(t1, /^hexmesh_proxy_nodejs_heap_size_used_bytes \d/m);
  assert.deepEqual(samples(t1, 'hexmesh_config_version'), ['hexmesh_config_version 1']);
  assert.deepEqual(samples(t2, 'hexmesh_config_version'), ['hexmesh_config_version 2']);
});

const promtool = spawnSync('promtool', ['--version']).error === undefined;

test(
  'promtool check metrics accepts the /metrics output',
  { skip: promtool ? false : 'promtool not installed (Debian package `prometheus` provides it)' },
  async () => {
    const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop' });
    const svc = telemetryLayer(metrics)(async () => ({
      status: 200,
      headers: { 'grpc-status': '0' },
      body: null,
    }));
    await svc(meshRequest());
    metrics.tcpConnection('inbound', 'web').read(10);
    metrics.setCircuitState('api', 'closed');
    metrics.recordRetries('api', 'shop/api', 'connect-failed');
    metrics.recordSynthetic('outbound', 'api', 'timeout');
    metrics.setCertExpiry(Date.now() + 86_400_000);
    const { text, contentType } = await scrape(metrics);
    assert.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');

    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.stdin.end(text);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, `promtool check metrics failed:\n${out}`);
  },
);

test('docs/telemetry.md names every hexmesh_ metric the registry holds', async () => {
  const doc = await readFile(new URL('../../docs/telemetry.md', import.meta.url), 'utf8');
  const metrics = new ProxyMetrics({ service: 'web', namespace: 'shop' });
  metrics.setCertExpiry(Date.now() + 1000);
  const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
  const ours = names.filter(
    (n) => !n.startsWith('hexmesh_proxy_process_') && !n.startsWith('hexmesh_proxy_nodejs_'),
  );
  assert.ok(ours.length === 17, `expected all hexmesh metrics, got ${ours.join(', ')}`);
  for (const name of ours)
    assert.ok(doc.includes(`\`${name}\``), `docs/telemetry.md does not document ${name}`);
});
