import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCp, call, eventually } from './helpers.ts';
import { startProxy } from '../support/mesh.ts';

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

const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test(
  'a real Prometheus discovers a real sidecar through the control plane and scrapes it (up == 1)',
  { skip: hasPrometheus ? false : 'prometheus is not installed', timeout: 60_000 },
  async () => {
    const t = await startCp();
    const proxy = await startProxy({ proxy: { service: 'ratings', app: { host: '127.0.0.1', port: 1 } } });
    const dir = await mkdtemp(join(tmpdir(), 'hexmesh-prom-'));
    const promPort = await freePort();
    const adminAddress = proxy.adminUrl.replace('http://', '');
    await call(t.url, 'PUT', '/v1/catalog/register', reg('sidecar-1', { adminAddress }));
    await writeFile(
      join(dir, 'prometheus.yml'),
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
    const prom = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    prom.stderr.on('data', (d) => (log = (log + d).slice(-4000)));
    const exited = new Promise((r) => prom.once('exit', r));
    try {
      const up = await eventually(
        'Prometheus to scrape the discovered sidecar',
        async () => {
          if (prom.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
          const res = await fetch(
            `http://127.0.0.1:${promPort}/api/v1/query?query=up{job="hexmesh-sidecars"}`,
          ).catch(() => undefined);
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
      prom.kill('SIGTERM');
      const killer = setTimeout(() => prom.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
      await proxy.close();
      await t.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
);
