import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCp, call, eventually } from './helpers.ts';
import { startProxy } from '../support/mesh.ts';
import { hasPrometheus, startPrometheus } from '../support/prometheus.ts';

const reg = (id: string, extra: Record<string, unknown>) => ({
  id,
  service: 'ratings',
  address: '127.0.0.1',
  port: 9100,
  labels: { version: 'v3' },
  ...extra,
});

test('Prometheus SD lists every instance with an adminAddress', async () => {
  const t = await startCp();
  try {
    await call(t.url, 'PUT', '/v1/catalog/register', reg('with-admin', { adminAddress: '127.0.0.1:9901' }));
    await call(t.url, 'PUT', '/v1/catalog/register', reg('no-sidecar', {}));
    const r = await call(t.url, 'GET', '/v1/sd/prometheus');
    assert.equal(r.status, 200);
    assert.ok(r.index! > 0);
    assert.deepEqual(r.body, [
      {
        targets: ['127.0.0.1:9901'],
        labels: {
          __meta_hexmesh_service: 'ratings',
          __meta_hexmesh_namespace: 'default',
          __meta_hexmesh_instance: 'with-admin',
          __meta_hexmesh_version: 'v3',
        },
      },
    ]);
    const bad = await call(t.url, 'PUT', '/v1/catalog/register', reg('bad', { adminAddress: 'http://x' }));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.problems[0].path, 'adminAddress');
  } finally {
    await t.close();
  }
});

test(
  'a real Prometheus discovers a real sidecar through the control plane and scrapes it (up == 1)',
  { skip: hasPrometheus ? false : 'prometheus is not installed', timeout: 60_000 },
  async () => {
    const t = await startCp();
    const proxy = await startProxy({ proxy: { service: 'ratings', app: { host: '127.0.0.1', port: 1 } } });
    const adminAddress = proxy.adminUrl.replace('http://', '');
    await call(t.url, 'PUT', '/v1/catalog/register', reg('sidecar-1', { adminAddress }));
    const prom = await startPrometheus(
      [
        'global: {scrape_interval: 1s, evaluation_interval: 1s}',
        'scrape_configs:',
        '  - job_name: hexmesh-sidecars',
        '    http_sd_configs:',
        `      - url: ${t.url}/v1/sd/prometheus`,
        '        refresh_interval: 1s',
        '    relabel_configs:',
        '      - {source_labels: [__meta_hexmesh_service], target_label: service}',
        '      - {source_labels: [__meta_hexmesh_instance], target_label: hexmesh_instance}',
      ].join('\n'),
    );
    try {
      const up = await eventually(
        'Prometheus to scrape the discovered sidecar',
        async () => {
          prom.assertRunning();
          const res = await fetch(`${prom.url}/api/v1/query?query=up{job="hexmesh-sidecars"}`).catch(
            () => undefined,
          );
          if (!res?.ok) return undefined;
          const body = (await res.json()) as {
            data: { result: { metric: Record<string, string>; value: [number, string] }[] };
          };
          return body.data.result.find((r) => r.value[1] === '1');
        },
        30_000,
      );
      assert.equal(up.metric.instance, adminAddress);
      assert.equal(up.metric.service, 'ratings');
      assert.equal(up.metric.hexmesh_instance, 'sidecar-1');
    } finally {
      await prom.close();
      await proxy.close();
      await t.close();
    }
  },
);
