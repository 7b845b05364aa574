/**
 * The scale-out path: the rules and dashboard in deploy/ are valid and only name metrics
 * the proxies export, and a real Prometheus scraping the mesh through the control plane's
 * HTTP SD gives the same answers as the control plane's embedded views.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ProxyMetrics } from '../../src/telemetry/metrics.ts';
import { parseAll } from '../../src/control/metrics/prom-text.ts';
import { PrometheusViews } from '../../src/control/metrics/prometheus-views.ts';
import { loadServices } from '../../src/cli/commands/stat.ts';
import { loadEdges } from '../../src/cli/commands/edges.ts';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { eventually } from './helpers.ts';
import { startStatsMesh } from './metrics-support.ts';
import { ROOT } from '../support/cli.ts';
import { hasPrometheus, startPrometheus } from '../support/prometheus.ts';

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
const RULES = join(ROOT, 'deploy', 'prometheus', 'rules.yml');
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'hexmesh-dashboard.json');

/** Every metric name a proxy exports (with a certificate, so the expiry gauge is there). */
async function exportedNames(): Promise<Set<string>> {
  const m = new ProxyMetrics({ service: 's', namespace: 'n', processMetrics: false });
  m.setCertExpiry(Date.now() + 86_400_000);
  m.requestSeries('inbound', 'a', 's', 'default', false).record(200, -1, 0.01);
  m.recordRetries('s', 'default', '503');
  m.recordConfigRejection();
  m.recordSynthetic('outbound', 's', 'timeout');
  m.setCircuitState('s', 'open');
  const text = await m.scrape();
  const names = new Set(parseAll(text).map((s) => s.name));
  for (const line of text.split('\n')) if (line.startsWith('# TYPE ')) names.add(line.split(' ')[2]);
  names.add('up');
  return names;
}

/** Metric names (not functions, labels, keywords or recording rules) in a PromQL expression. */
function metricNames(expr: string): string[] {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const noLabels = noStrings
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, '');
  return [...noLabels.matchAll(/\b(hexmesh_[a-z_]+|up)\b(?!\s*\()/g)].map((m) => m[1]);
}

function dashboardExprs(dash: { panels: { title: string; targets?: { expr: string }[] }[] }): string[] {
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

test(
  'rules.yml passes promtool check rules',
  { skip: hasPromtool ? false : 'promtool is not installed' },
  () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
  },
);

test('rules and dashboard name only metrics the proxies export', async () => {
  const names = await exportedNames();
  const known = (n: string) => names.has(n) || names.has(n.replace(/_(bucket|count|sum)$/, ''));
  const rules = parseYaml(await readFile(RULES, 'utf8')) as {
    groups: { rules: { record?: string; alert?: string; expr: string }[] }[];
  };
  const all = rules.groups.flatMap((g) => g.rules);
  const alerts = all.filter((r) => r.alert).map((r) => r.alert);
  for (const a of [
    'HexmeshSuccessRateDrop',
    'HexmeshLatencySLOBurn',
    'HexmeshCertificateExpiringSoon',
    'HexmeshConfigRejected',
  ])
    assert.ok(alerts.includes(a), `alert ${a} missing`);
  assert.match(
    all.find((r) => r.alert === 'HexmeshCertificateExpiringSoon')!.expr,
    /hexmesh_cert_expiry_seconds < 7 \* 86400/,
  );
  assert.match(
    all.find((r) => r.alert === 'HexmeshConfigRejected')!.expr,
    /increase\(hexmesh_config_rejections_total\[5m\]\) > 0/,
  );
  for (const r of all)
    for (const n of metricNames(r.expr))
      assert.ok(known(n), `rules.yml: ${r.record ?? r.alert} uses unknown ${n}`);

  const dash = JSON.parse(await readFile(DASHBOARD, 'utf8'));
  assert.ok(dash.title && Array.isArray(dash.panels) && dash.panels.length >= 8);
  const exprs = dashboardExprs(dash);
  assert.ok(exprs.length >= 10);
  let used = 0;
  for (const e of exprs)
    for (const n of metricNames(e)) {
      assert.ok(known(n), `dashboard uses unknown metric ${n} in ${e}`);
      used++;
    }
  assert.ok(used >= exprs.length);
  for (const needed of ['hexmesh_requests_total', 'hexmesh_request_duration_seconds_bucket'])
    assert.ok(
      exprs.some((e) => e.includes(needed)),
      `no panel uses ${needed}`,
    );
  // The checker itself: an unknown name is caught.
  assert.equal(known(metricNames('rate(hexmesh_requestz_total[1m])')[0]), false);
});

test(
  'every dashboard expression is valid PromQL (promtool)',
  { skip: hasPromtool ? false : 'promtool is not installed' },
  async () => {
    const dash = JSON.parse(await readFile(DASHBOARD, 'utf8'));
    const dir = await mkdtemp(join(tmpdir(), 'hexmesh-dash-'));
    try {
      const rules = dashboardExprs(dash).map((e, i) => ({
        record: `dashboard:expr${i}`,
        expr: e
          .replaceAll('$__rate_interval', '1m')
          .replaceAll('$namespace', '.*')
          .replaceAll('$service', '.*'),
      }));
      await writeFile(join(dir, 'r.yml'), JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = spawnSync('promtool', ['check', 'rules', join(dir, 'r.yml')], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(a, b);

test(
  'hexmesh stat from the control plane and from a real Prometheus agree',
  { skip: hasPrometheus ? false : 'prometheus is not installed', timeout: 60_000 },
  async () => {
    const m = await startStatsMesh();
    // The shipped scrape config, pointed at this control plane and scraping every second.
    const cfg = parseYaml(await readFile(join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8'));
    cfg.global = { scrape_interval: '1s', evaluation_interval: '1s' };
    cfg.rule_files = [RULES];
    cfg.scrape_configs[0].http_sd_configs[0] = {
      url: `${m.cp.url}/v1/sd/prometheus`,
      refresh_interval: '1s',
    };
    const prom = await startPrometheus(cfg);
    const promUrl = prom.url;
    const views = new PrometheusViews(promUrl);
    const client = new ControlClient(m.cp.url);
    try {
      await eventually(
        'Prometheus to scrape both sidecars',
        async () => {
          prom.assertRunning();
          const up = await views.query('up{job="hexmesh-sidecars"} == 1').catch(() => []);
          return up.length === 2;
        },
        30_000,
      );
      // Warm up so the series exist in both before the measured load.
      await m.load(20);
      await new Promise((r) => setTimeout(r, 2500));
      const counts = await m.load(300);
      assert.equal((counts.get(200) ?? 0) + (counts.get(500) ?? 0), 300);
      // Let both collect the last of it (control plane every 200 ms, Prometheus every 1 s).
      await new Promise((r) => setTimeout(r, 3000));

      const opts = { window: 60_000, output: 'json' as const };
      const fromCp = await loadServices(client, opts, 'ratings');
      const fromProm = await loadServices(client, { ...opts, prometheus: promUrl }, 'ratings');
      assert.equal(fromCp.source, 'control-plane');
      assert.equal(fromProm.source, 'prometheus');
      const a = fromCp.services.find((s) => s.service === 'ratings')!;
      const b = fromProm.services.find((s) => s.service === 'ratings')!;
      assert.ok(a && b, JSON.stringify({ fromCp, fromProm }));
      assert.equal(a.requests, 320);
      // Prometheus misses the first sample of each series and extrapolates the edges.
      assert.ok(
        close(a.requests, b.requests, 0.2),
        `requests: control plane ${a.requests}, Prometheus ${b.requests}`,
      );
      assert.ok(close(a.rps, b.rps, 0.2), `rps: ${a.rps} vs ${b.rps}`);
      assert.ok(
        Math.abs(a.successRate! - b.successRate!) < 0.04,
        `success: ${a.successRate} vs ${b.successRate}`,
      );
      assert.equal(a.namespace, b.namespace);
      assert.deepEqual([a.instances, a.stale], [b.instances, b.stale]);
      assert.ok(b.latencyMs.p99 !== null && a.latencyMs.p99 !== null);

      const ea = (await loadEdges(client, opts)).edges.find((e) => e.dst === 'ratings')!;
      const eb = (await loadEdges(client, { ...opts, prometheus: promUrl })).edges.find(
        (e) => e.dst === 'ratings',
      )!;
      assert.equal(ea.src, 'client');
      assert.equal(eb.src, 'client');
      assert.ok(close(ea.requests, eb.requests, 0.2), `edge requests: ${ea.requests} vs ${eb.requests}`);
      assert.ok(Math.abs(ea.successRate! - eb.successRate!) < 0.04);

      // The recording rules evaluate to the same figures. Prometheus evaluates rules on its own
      // schedule, so an evaluation from before the failing requests were scraped can still read
      // 1: wait (bounded) for one that has seen them.
      let last = 'no sample';
      await eventually(
        `recording rule close to ${a.successRate} (last: ${last})`,
        async () => {
          const r = await views.query('hexmesh:service_success:ratio_rate1m{dst_service="ratings"}');
          if (!r[0]) return false;
          last = String(r[0].value[1]);
          return Math.abs(Number(r[0].value[1]) - a.successRate!) < 0.05;
        },
        20_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; recorded ${last}`);
      });
    } finally {
      await prom.close();
      await client.close();
      await m.close();
    }
  },
);
