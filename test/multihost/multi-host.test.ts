/**
 * A mesh over three hosts, built as docs/multi-host.md says (the commands are those of
 * ./steps.ts, which a docs test keeps on that page): three network namespaces on one bridge,
 * a three-member etcd cluster across them, a control-plane replica on each (`--tls`), `echo`
 * with its sidecar on hosts b and c, the `client` sidecar on host a, join tokens made on a.
 *
 * Proves: a request from a reaches the instance on c over mutual TLS; killing host c whole
 * (link cut, then every process: its etcd member, control plane, app and sidecar) under a
 * bounded load of GETs loses no request, the catalog drops c's instance within the lease
 * TTL, and the surviving control planes keep serving (reads and writes).
 *
 * Needs root (`ip netns`) and etcd; skipped otherwise. Everything runs inside the test's own
 * namespaces (10.233.7.0/24 exists only there); they and every process in them are removed
 * at the end, on failure too.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { etcdMissingReason } from '../support/etcd-cluster.ts';
import { HostNetwork, netnsMissingReason, type Host } from '../support/netns.ts';
import { ROOT } from '../support/cli.ts';
import * as step from './steps.ts';

const SUBNET = '10.233.7';
/** The discovery stream's lease TTL: how long an instance outlives its dead sidecar (docs/control-plane.md). */
const LEASE_TTL_MS = 15_000;

const skip = netnsMissingReason() ?? etcdMissingReason();

async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined>,
  logs: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${logs()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The load: `workers` loops of GET / through the client's sidecar, a pause between requests,
 * for `durationMs`; prints one JSON line of counts at the end. Bounded in time and rate.
 */
const LOAD_SCRIPT = `
import http from 'node:http';
const [durationMs, workers, pauseMs] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: workers });
const out = { total: 0, byHost: {}, failures: [], maxMs: 0 };
const get = () => new Promise((resolve) => {
  const t0 = Date.now();
  const req = http.request({ host: '127.0.0.1', port: 4140, path: '/', headers: { host: 'echo' }, agent, timeout: 30000 }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => (body += d));
    res.on('end', () => resolve({ status: res.statusCode, body, ms: Date.now() - t0, error: res.headers['x-hexmesh-error'] }));
  });
  req.on('timeout', () => req.destroy(new Error('client timeout')));
  req.on('error', (e) => resolve({ status: 0, body: String(e.message), ms: Date.now() - t0 }));
  req.end();
});
const end = Date.now() + durationMs;
await Promise.all(Array.from({ length: workers }, async () => {
  while (Date.now() < end) {
    const r = await get();
    out.total++;
    out.maxMs = Math.max(out.maxMs, r.ms);
    const m = /echo from (\\w+)/.exec(r.body);
    if (r.status === 200 && m) out.byHost[m[1]] = (out.byHost[m[1]] ?? 0) + 1;
    else out.failures.push({ at: Date.now(), status: r.status, error: r.error, body: r.body.slice(0, 200) });
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}));
process.stdout.write(JSON.stringify(out) + '\\n');
`;

test(
  'three hosts: etcd x3, a control plane per host over TLS, sidecars across hosts over mTLS; a host dies under load',
  { skip, timeout: 900_000 },
  async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'hexmesh-multihost-'));
    const net = HostNetwork.create(3, SUBNET);
    t.after(() => {
      net.destroySync();
      rmSync(tmp, { recursive: true, force: true });
    });
    const logs = () => net.logs();
    const [a, b, c] = net.hosts;

    // `hexmesh` on the PATH, as after an install: the doc's commands run as written.
    const binDir = join(tmp, 'bin');
    mkdirSync(binDir);
    writeFileSync(
      join(binDir, 'hexmesh'),
      `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin', 'hexmesh.js')}" "$@"\n`,
    );
    chmodSync(join(binDir, 'hexmesh'), 0o755);

    // The doc's variables, per host.
    const ips = net.hosts.map((h) => h.ip);
    const vars = (h: Host, extra: Record<string, string> = {}): Record<string, string> => {
      const home = join(tmp, h.name);
      mkdirSync(home, { recursive: true });
      const control = join(home, 'control');
      return {
        PATH: `${binDir}:${process.env.PATH}`,
        HOME: home,
        HOST_NAME: h.name,
        HOST_IP: h.ip,
        ETCD_DATA: join(home, 'etcd'),
        ETCD_CLUSTER: net.hosts.map((x) => `${x.name}=http://${x.ip}:2380`).join(','),
        HEXMESH_STORE: `etcd://${ips.map((x) => `${x}:2379`).join(',')}`,
        HEXMESH_DATA: control,
        CONTROL_URLS: [h.ip, ...ips.filter((x) => x !== h.ip)].map((x) => `https://${x}:7070`).join(','),
        HEXMESH_CONTROL_CA: join(control, 'ca-bundle.pem'),
        CA_SECRET: join(home, 'ca-key.secret'),
        ...extra,
      };
    };
    const ok = async (
      h: Host,
      cmd: string,
      extra: Record<string, string> = {},
      cwd?: string,
    ): Promise<string | undefined> => {
      const r = await net.run(h, cmd, vars(h, extra), 60_000, cwd);
      return r.code === 0 ? r.stdout : undefined;
    };
    const must = async (
      h: Host,
      cmd: string,
      extra: Record<string, string> = {},
      cwd?: string,
    ): Promise<string> => {
      const r = await net.run(h, cmd, vars(h, extra), 120_000, cwd);
      assert.equal(r.code, 0, `${h.name}: ${cmd}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\n${logs()}`);
      return r.stdout;
    };
    const timings: Record<string, number> = {};
    const t0 = Date.now();

    // 1. etcd on every host.
    for (const h of net.hosts) net.start(h, 'etcd', step.ETCD, vars(h));
    for (const h of net.hosts) await until(`etcd on ${h.name}`, 90_000, () => ok(h, step.ETCD_HEALTH), logs);
    timings.etcd = Date.now() - t0;

    // 2. The CA key's sealing secret, made on a and copied to b and c; then a control plane
    //    per host: a first (it creates the CA), then the others.
    await must(a, step.CA_SECRET);
    for (const h of [b, c]) copyFileSync(vars(a).CA_SECRET, vars(h).CA_SECRET);
    net.start(a, 'control', step.CONTROL, vars(a));
    await until('the control plane on a', 120_000, () => ok(a, step.CONTROL_HEALTH), logs);
    for (const h of [b, c]) net.start(h, 'control', step.CONTROL, vars(h));
    for (const h of [b, c])
      await until(`the control plane on ${h.name}`, 120_000, () => ok(h, step.CONTROL_HEALTH), logs);
    timings.controlPlanes = Date.now() - t0;

    // 3. Join tokens, made on a with its replica's admin credentials.
    const admin = { HEXMESH_CREDENTIALS: join(tmp, 'a', 'control', 'credentials.json') };
    const tokenOf = async (service: string) => {
      const out = await must(a, step.TOKEN, { ...admin, SERVICE: service });
      const m = /^hxjt\.\S+$/m.exec(out);
      assert.ok(m, `no join token in: ${out}`);
      return m[0];
    };
    const echoToken = await tokenOf('echo');
    const clientToken = await tokenOf('client');

    // 4. The policy for host failures.
    const work = join(tmp, 'a', 'work');
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'echo-policy.yaml'), step.POLICY_YAML);
    await must(a, step.APPLY_POLICY, admin, work);

    // 5. echo + sidecar on b and c; the client's sidecar on a.
    for (const h of [b, c]) {
      net.start(h, 'echo app', step.ECHO_APP, vars(h));
      net.start(h, 'echo sidecar', step.ECHO_SIDECAR, vars(h, { ECHO_TOKEN: echoToken }));
    }
    net.start(a, 'client sidecar', step.CLIENT_SIDECAR, vars(a, { CLIENT_TOKEN: clientToken }));

    // 6. The catalog lists both instances, passing, at the advertised addresses.
    let catalog = '';
    await until(
      'echo on b and c in the catalog, passing',
      180_000,
      async () => {
        const r = await net.run(a, step.ENDPOINTS, vars(a, admin));
        catalog = `exit ${r.code}: ${r.stdout}${r.stderr}`;
        if (r.code !== 0) return undefined;
        const out = r.stdout;
        const list = JSON.parse(out) as { address: string; status?: string; health?: string }[];
        const passing = list.filter((i) => JSON.stringify(i).includes('passing'));
        return [b.ip, c.ip].every((ip) => passing.some((i) => i.address === ip)) ? list : undefined;
      },
      () => `last catalog read: ${catalog}\n${logs()}`,
    );
    timings.meshUp = Date.now() - t0;

    // A request from a reaches the instance on c (the balancer spreads them; bounded tries).
    const seen = new Set<string>();
    await until(
      'a request from a answered by c',
      60_000,
      async () => {
        const body = await ok(a, step.REQUEST);
        const m = body && /echo from (\w)/.exec(body);
        if (m) seen.add(m[1]);
        return seen.has('c') ? true : undefined;
      },
      logs,
    );
    // ... over mutual TLS: c's sidecar counted inbound requests from client's identity, tls="true".
    const metrics = await must(c, step.MTLS_METRICS);
    assert.match(
      metrics,
      /src_service="client".*tls="true"\} [1-9]/,
      `no mTLS request from client on c:\n${metrics}`,
    );
    assert.doesNotMatch(metrics, /tls="false"\} [1-9]/, `plaintext inbound requests on c:\n${metrics}`);

    // Kill host c under load: 4 workers, 50 ms between requests, 45 s; c dies 5 s in.
    writeFileSync(join(work, 'load.mjs'), LOAD_SCRIPT);
    const load = net.start(a, 'load', `node load.mjs 45000 4 50`, vars(a), work);
    await new Promise((r) => setTimeout(r, 5_000));
    const killedAt = Date.now();
    await net.killHost(c);
    assert.deepEqual(net.pids(c), [], 'processes left on the killed host');

    // The catalog (read through a's replica) drops c's instance once its lease lapses. Read
    // with curl, not the CLI: a CLI start costs seconds on a loaded machine, blurring the time.
    const adminToken = (
      JSON.parse(readFileSync(admin.HEXMESH_CREDENTIALS, 'utf8')) as { contexts: { token: string }[] }
    ).contexts[0].token;
    let lastRead = '';
    const catalogRead = `curl -sf --cacert $HEXMESH_CONTROL_CA -H "authorization: Bearer $ADMIN_TOKEN" https://127.0.0.1:7070/v1/catalog/service/default/echo`;
    await until(
      "c's instance gone from the catalog",
      LEASE_TTL_MS + 60_000,
      async () => {
        const r = await net.run(a, catalogRead, vars(a, { ADMIN_TOKEN: adminToken }), 30_000);
        lastRead = `exit ${r.code} after ${Date.now() - killedAt} ms: ${r.stdout}${r.stderr}`;
        const out = r.code === 0 ? r.stdout : '';
        return !out.includes(`"${c.ip}"`) && out.includes(`"${b.ip}"`) ? true : undefined;
      },
      () => `last catalog read: ${lastRead}\n${logs()}`,
    );
    const dropMs = Date.now() - killedAt;

    // The surviving control planes serve reads and writes (etcd keeps its quorum with a and b).
    for (const h of [a, b]) await must(h, step.CONTROL_HEALTH);
    await must(b, step.ENDPOINTS, { HEXMESH_CREDENTIALS: join(tmp, 'b', 'control', 'credentials.json') });
    await tokenOf('later');

    const code = await load.exited;
    assert.equal(code, 0, `load generator failed:\n${load.output()}`);
    const result = JSON.parse(load.output().trim().split('\n').pop()!) as {
      total: number;
      byHost: Record<string, number>;
      failures: { at: number; status: number; error?: string; body: string }[];
      maxMs: number;
    };
    t.diagnostic(
      `host kill: ${result.total} GETs (${JSON.stringify(result.byHost)}), ${result.failures.length} failed, slowest ${result.maxMs} ms; c's instance left the catalog ${dropMs} ms after the kill (lease TTL ${LEASE_TTL_MS} ms); setup: ${JSON.stringify(timings)}`,
    );
    assert.deepEqual(result.failures, [], 'requests lost while host c died');
    assert.ok(result.total >= 100, `only ${result.total} requests made`);
    assert.ok(
      (result.byHost.b ?? 0) > 0 && (result.byHost.c ?? 0) > 0,
      'the load reached both b and c (before the kill)',
    );
    // Within the TTL, plus what polling through the CLI costs on a loaded machine.
    assert.ok(dropMs <= LEASE_TTL_MS + 10_000, `c's instance stayed ${dropMs} ms in the catalog`);
  },
);
