import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HealthChecker, type HealthTarget } from './health-checker.ts';
import type { HealthCheckConfig } from './run-check.ts';

/** Answers /health with whatever `code` currently holds; counts requests. */
let code = 200;
let hits = 0;
const server = http.createServer((_req, res) => {
  hits++;
  res.writeHead(code).end();
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as AddressInfo).port;
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const config: HealthCheckConfig = {
  type: 'http',
  path: '/health',
  grpcService: '',
  interval: 50,
  timeout: 1000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
};

function target(p = port): HealthTarget {
  return { key: `127.0.0.1:${p}`, address: '127.0.0.1', port: p, checkHealthy: true };
}

/** Poll `cond` every 10 ms, for at most `ms`. */
async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('healthy/unhealthy thresholds flip the target, in order of check results', async () => {
  code = 200;
  const t = target();
  const log: string[] = [];
  const hc = new HealthChecker(config, [t], {
    onResult: (_k, r) => log.push(r.status),
    onChange: (_k, healthy, detail) => log.push(`${healthy ? 'HEALTHY' : 'UNHEALTHY'} ${detail}`),
  });
  try {
    // Consul: a new target is unhealthy until its first pass; one pass is enough the first time.
    assert.equal(t.checkHealthy, false);
    assert.equal(hc.health(t.key)?.detail, 'not checked yet');
    await waitFor(() => t.checkHealthy);
    assert.deepEqual(log.slice(0, 2), ['HEALTHY HTTP 200 from /health', 'passing']);

    code = 500;
    log.length = 0;
    await waitFor(() => !t.checkHealthy);
    // Three consecutive failures flip it, not fewer (a leading pass may have been in flight).
    const firstFail = log.indexOf('critical');
    assert.deepEqual(log.slice(firstFail, firstFail + 4), [
      'critical',
      'critical',
      'UNHEALTHY HTTP 500 from /health',
      'critical',
    ]);
    assert.deepEqual(hc.health(t.key), {
      healthy: false,
      status: 'critical',
      detail: 'HTTP 500 from /health',
    });

    code = 200;
    log.length = 0;
    await waitFor(() => t.checkHealthy);
    const firstPass = log.indexOf('passing');
    assert.deepEqual(log.slice(firstPass, firstPass + 3), [
      'passing',
      'HEALTHY HTTP 200 from /health',
      'passing',
    ]);
  } finally {
    hc.close();
  }
});

test('429 counts as passing for traffic but is reported as warning', async () => {
  code = 429;
  const t = target();
  const statuses: string[] = [];
  const hc = new HealthChecker(config, [t], { onResult: (_k, r) => statuses.push(r.status) });
  try {
    await waitFor(() => t.checkHealthy);
    assert.equal(hc.health(t.key)?.status, 'warning');
    assert.equal(statuses[0], 'warning');
  } finally {
    hc.close();
    code = 200;
  }
});

test('initialHealthy: true trusts a new target until unhealthyThreshold failures', async () => {
  // Nothing listens on this port.
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));

  const t = target(deadPort);
  t.checkHealthy = false;
  const results: string[] = [];
  const hc = new HealthChecker(config, [t], {
    initialHealthy: true,
    onResult: (_k, r) => results.push(r.detail),
  });
  try {
    assert.equal(t.checkHealthy, true);
    await waitFor(() => !t.checkHealthy);
    assert.equal(results.length >= 3, true);
    assert.equal(results[0], `connect refused by 127.0.0.1:${deadPort}`);
  } finally {
    hc.close();
  }
});

test('setTargets keeps state by key, stops removed targets; close stops everything', async () => {
  code = 200;
  const a = target();
  const checked = new Map<string, number>();
  const hc = new HealthChecker(config, [a], {
    onResult: (k) => checked.set(k, (checked.get(k) ?? 0) + 1),
  });
  await waitFor(() => a.checkHealthy);
  // Same key, new object: state copied over.
  const a2 = target();
  a2.checkHealthy = false;
  hc.setTargets([a2]);
  assert.equal(a2.checkHealthy, true);

  hc.setTargets([]);
  assert.equal(hc.health(a.key), undefined);
  const before = checked.get(a.key) ?? 0;
  const hitsBefore = hits;
  await new Promise((r) => setTimeout(r, 200));
  // At most one check that was already in flight may land on the server; none is counted.
  assert.equal(checked.get(a.key) ?? 0, before);
  assert.ok(hits - hitsBefore <= 1, `${hits - hitsBefore} checks after removal`);

  hc.setTargets([a2]);
  await waitFor(() => (checked.get(a.key) ?? 0) > before);
  hc.close();
  hc.close();
  const after = checked.get(a.key);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(checked.get(a.key), after);
});

test('first checks are jittered over the interval', async () => {
  code = 200;
  const targets = Array.from({ length: 4 }, () => target());
  // Distinct keys for the same server, so each is its own target.
  const distinct = targets.map((t, i) => ({ ...t, key: `${t.key}#${i}` }));
  const times = new Map<string, number>();
  const start = performance.now();
  const jitter = [0, 0.25, 0.5, 0.99];
  let i = 0;
  const hc = new HealthChecker({ ...config, interval: 400 }, distinct, {
    random: () => jitter[i++ % jitter.length],
    onResult: (k) => {
      if (!times.has(k)) times.set(k, performance.now() - start);
    },
  });
  try {
    await waitFor(() => times.size === 4);
    // The last target's first check waited about 0.99 × 400 ms; the first did not.
    assert.ok(times.get(distinct[3].key)! >= 350, `last first check at ${times.get(distinct[3].key)} ms`);
    assert.ok(times.get(distinct[0].key)! < times.get(distinct[3].key)!);
  } finally {
    hc.close();
  }
});

test('constructor rejects a non-positive interval, naming the option', () => {
  assert.throws(() => new HealthChecker({ ...config, interval: 0 }, []), /healthCheck\.interval/);
});
