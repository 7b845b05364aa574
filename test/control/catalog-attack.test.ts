/**
 * Adversarial catalog writes by a workload that holds `catalog:write` for its own service only.
 * Real control plane (auth enforced), real SQLite store, real discovery stream.
 *
 * - An instance's address is rendered into config files (`server {{ i.id }} {{ i.address }}:{{
 *   i.port }} check` in an HAProxy template) and dialled by every client sidecar: a space or a
 *   newline in it lets the workload write its own directives there (`check addr <any host>
 *   port <any port>` sends HAProxy's health checks wherever it likes). Only an IP address or a
 *   DNS host name is an address. Labels are free text (the dashboard shows markup in them as
 *   text) but a line break in one is refused for the same reason.
 * - A check definition names no target and no command: the control plane runs no check at
 *   all, and a sidecar runs its own `--check` flags against its own app only.
 * - An instance record is small: its labels travel in every discovery snapshot of the service
 *   to every client sidecar, so a workload registering instances with megabytes of labels
 *   would have every client of its service closed for reading too slowly (4008).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { call, startCp, type TestCp } from './helpers.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function enforcing(): Promise<TestCp & { web: string }> {
  const t = await startCp({ auth: { mode: 'enforce' }, identity: {}, discovery: true });
  const web = (
    await t.cp.tokens.create({
      name: 'web',
      role: 'workload',
      subject: { namespace: 'default', service: 'web' },
    })
  ).token;
  return { ...t, web };
}

const instance = (id: string, extra: Record<string, unknown>) => ({
  id,
  service: 'web',
  address: '127.0.0.1',
  port: 9,
  ...extra,
});

test('a workload cannot smuggle directives into rendered configs through its instance address or labels', async () => {
  const t = await enforcing();
  try {
    const cpPort = new URL(t.url).port;
    const hostile = [
      // HAProxy: the line stays one server whose health checks go to the control plane's API.
      { address: `127.0.0.1:9 check addr 127.0.0.1 port ${cpPort} #`, path: 'address' },
      // Any line-based config: a second server (or any directive) of the workload's choosing.
      { address: '127.0.0.1:9\n  server evil 127.0.0.1', path: 'address' },
      { address: '127.0.0.1;', path: 'address' },
      { address: '', path: 'address' },
      { labels: { version: 'v1\n  server evil 127.0.0.1:7070' }, path: 'labels.version' },
      { labels: { 'zone\r\nevil': 'a' }, path: 'labels' },
    ];
    for (const [n, { path, ...fields }] of hostile.entries()) {
      const r = await call(
        t.url,
        'PUT',
        '/v1/catalog/register',
        instance(`evil-${n}`, fields),
        bearer(t.web),
      );
      assert.equal(r.status, 400, `${JSON.stringify(fields)} → ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'HEXMESH_ERR_CONFIG_INVALID');
      assert.ok(
        r.body.error.problems.some((p: { path: string }) => p.path.startsWith(path)),
        `a problem at ${path}: ${JSON.stringify(r.body.error.problems)}`,
      );
    }
    // What an address is: IPv4, IPv6 (with a zone), a DNS host name. Labels stay free text.
    for (const [n, address] of [
      '10.0.0.7',
      '::1',
      'fe80::1%eth0',
      'web-1.shop.svc.cluster.local',
    ].entries()) {
      const r = await call(
        t.url,
        'PUT',
        '/v1/catalog/register',
        instance(`good-${n}`, { address, labels: { version: 'v1', note: '<b>free "text"</b>' } }),
        bearer(t.web),
      );
      assert.equal(r.status, 200, `${address}: ${JSON.stringify(r.body)}`);
    }
    const listed = await call(t.url, 'GET', '/v1/catalog/service/default/web', undefined, bearer(t.web));
    assert.equal(listed.status, 403, 'a workload does not read the catalog');
    const ids = (await t.cp.catalog.list('default', 'web')).instances.map((i) => i.id).sort();
    assert.deepEqual(ids, ['good-0', 'good-1', 'good-2', 'good-3']);
  } finally {
    await t.close();
  }
});

test('the discovery stream registers no instance whose address is not an address', async () => {
  const t = await enforcing();
  try {
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/v1/discovery`, { headers: bearer(t.web) });
    // Closed (refused), or a snapshot (registered: the attack worked).
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      ws.on('open', () =>
        ws.send(
          JSON.stringify({
            type: 'hello',
            node: {
              id: 'web-1',
              service: 'web',
              address: '127.0.0.1:9 backup\n  server evil 127.0.0.1',
              appPort: 9,
            },
          }),
        ),
      );
      ws.on('message', (d) => resolve({ code: 0, reason: `answered ${String(d).slice(0, 80)}` }));
      ws.on('close', (code, reason) => resolve({ code, reason: String(reason) }));
      ws.on('error', () => {});
    });
    const c = await closed;
    ws.terminate();
    assert.match(c.reason, /address/, `closed naming the address: ${JSON.stringify(c)}`);
    assert.deepEqual((await t.cp.catalog.list('default', 'web')).instances, []);
  } finally {
    await t.close();
  }
});

test('a check definition names no target and runs no command', async () => {
  const t = await enforcing();
  try {
    const hostile: { check: Record<string, unknown>; why: RegExp }[] = [
      // Consul's script and docker checks run commands; hexmesh has none.
      { check: { name: 'c', type: 'script', args: ['/bin/sh', '-c', 'id'] }, why: /type|args/ },
      { check: { name: 'c', type: 'docker', script: 'id' }, why: /type|script/ },
      // Consul's http / tcp / grpc check fields name a target; a hexmesh check has none.
      { check: { name: 'c', type: 'http', http: 'http://169.254.169.254/latest/meta-data/' }, why: /http/ },
      { check: { name: 'c', type: 'tcp', tcp: `127.0.0.1:${new URL(t.url).port}` }, why: /tcp/ },
      { check: { name: 'c', type: 'grpc', address: '127.0.0.1', port: 7070 }, why: /address|port/ },
      { check: { name: 'c', type: 'http', header: { Host: ['169.254.169.254'] } }, why: /header/ },
      // The path is an origin-form request target on the app's own port, nothing else.
      { check: { name: 'c', type: 'http', path: 'http://169.254.169.254/latest/meta-data/' }, why: /path/ },
      { check: { name: 'c', type: 'http', path: '//169.254.169.254/latest' }, why: /path/ },
      {
        check: { name: 'c', type: 'http', path: '/health HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n' },
        why: /path/,
      },
      { check: { name: 'c', type: 'http', path: 'health' }, why: /path/ },
    ];
    for (const [n, { check, why }] of hostile.entries()) {
      const r = await call(
        t.url,
        'PUT',
        '/v1/catalog/register',
        instance(`c-${n}`, { checks: [check] }),
        bearer(t.web),
      );
      assert.equal(r.status, 400, `${JSON.stringify(check)} → ${JSON.stringify(r.body)}`);
      assert.match(
        r.body.error.problems
          .map((p: { path: string; message: string }) => `${p.path}: ${p.message}`)
          .join('\n'),
        why,
      );
    }
    const ok = await call(
      t.url,
      'PUT',
      '/v1/catalog/register',
      instance('c-ok', { checks: [{ name: 'c', type: 'http', path: '/health?deep=1' }] }),
      bearer(t.web),
    );
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  } finally {
    await t.close();
  }
});

test('an instance record is bounded: at most 64 labels of bounded size and 16 checks', async () => {
  const t = await enforcing();
  try {
    const big = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'.repeat(4000)]));
    const tooBig: { fields: Record<string, unknown>; path: RegExp }[] = [
      // 800 KB of labels, inside the 1 MiB body limit: sent to every client of the service.
      { fields: { labels: big }, path: /^labels/ },
      {
        fields: { labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) },
        path: /^labels$/,
      },
      { fields: { labels: { version: 'v'.repeat(254) } }, path: /^labels\.version$/ },
      { fields: { labels: { ['k'.repeat(318)]: 'v' } }, path: /^labels/ },
      {
        fields: { checks: Array.from({ length: 17 }, (_, i) => ({ name: `c${i}`, type: 'tcp' })) },
        path: /^checks$/,
      },
      { fields: { checks: [{ name: 'n'.repeat(129), type: 'tcp' }] }, path: /^checks\[0\]\.name$/ },
    ];
    for (const [n, { fields, path }] of tooBig.entries()) {
      const r = await call(t.url, 'PUT', '/v1/catalog/register', instance(`big-${n}`, fields), bearer(t.web));
      assert.equal(r.status, 400, `case ${n}: ${JSON.stringify(r.body).slice(0, 300)}`);
      assert.ok(
        r.body.error.problems.some((p: { path: string }) => path.test(p.path)),
        `case ${n}: ${JSON.stringify(r.body.error.problems).slice(0, 300)}`,
      );
    }
    // The largest allowed: 64 labels (Kubernetes-size keys, 253-character values), 16 checks.
    const labels = Object.fromEntries(
      Array.from({ length: 64 }, (_, i) => [`k${i}`.padEnd(317, 'k'), 'v'.repeat(253)]),
    );
    const checks = Array.from({ length: 16 }, (_, i) => ({ name: `c${i}`, type: 'tcp' }));
    const ok = await call(
      t.url,
      'PUT',
      '/v1/catalog/register',
      instance('max', { labels, checks }),
      bearer(t.web),
    );
    assert.equal(ok.status, 200, JSON.stringify(ok.body).slice(0, 300));
    const kv = await t.store.get('/hexmesh/instances/default/web/max');
    assert.ok(kv!.value.length < 48 * 1024, `record of ${kv!.value.length} bytes`);
  } finally {
    await t.close();
  }
});
