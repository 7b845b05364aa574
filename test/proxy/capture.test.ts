/**
 * Transparent capture for real (issue 13): three "pods" as network namespaces the test makes
 * (HostNetwork), each with `hexmesh capture`'s iptables rules and a sidecar running as the
 * proxy uid, as the injector lays out a Pod. Unmodified clients in the client pod dial
 * Service cluster IPs (addresses that exist nowhere: only the capture rules make them
 * work) and reach the apps in the other pods through both sidecars, over mTLS.
 *
 * Needs root, `ip netns`, iptables and the SO_ORIGINAL_DST FFI; skipped with the reason
 * otherwise — except in CI (CI=true), where a missing prerequisite fails the test.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostNetwork, netnsMissingReason, type Host } from '../support/netns.ts';
import { PemDir, TestCa } from '../support/pki.ts';
import { originalDestinationUnavailable } from '../../src/proxy/capture/original-destination.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HEXMESH = `"${process.execPath}" "${join(ROOT, 'bin', 'hexmesh.js')}"`;
const PROXY_UID = 2102;
const SUBNET = '10.233.131';
const WEB_VIP = '10.96.131.10';
const ECHO_VIP = '10.96.131.11';
const BANNER_VIP = '10.96.131.12';

function missing(): string | undefined {
  return (
    netnsMissingReason() ??
    (spawnSync('iptables-restore', ['--version']).status === 0
      ? undefined
      : 'iptables-restore is not installed (apt-get install iptables)') ??
    originalDestinationUnavailable()
  );
}
const reason = missing();
// CI installs every prerequisite (.ci/run): there a missing one is a failure, not a skip.
const skip = process.env.CI ? false : (reason ?? false);

let net: HostNetwork;
let work: string;
let pem: PemDir;
let a: Host;
let b: Host;
let c: Host;
let clientSidecar: ReturnType<HostNetwork['start']>;

/** Poll `f` until it returns a value (not undefined) or the deadline passes. */
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${net.logs()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The value of one series of a sidecar's /metrics (0 when absent). */
async function metric(h: Host, name: string, labels: Record<string, string>): Promise<number> {
  const r = await net.run(h, 'curl -s --max-time 5 http://127.0.0.1:4191/metrics');
  let sum = 0;
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The nat table without comments and counters, for comparing two runs. */
function natRules(h: Host): string {
  const r = spawnSync('ip', ['netns', 'exec', h.netns, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
    .join('\n');
}

/** A TCP client in `h` (root, so captured): sends `data`, prints what comes back until EOF. */
async function tcpClient(h: Host, host: string, port: number, data: string) {
  return net.run(
    h,
    `"${process.execPath}" client.cjs ${host} ${port} ${JSON.stringify(data)}`,
    {},
    30_000,
    work,
  );
}

const CLIENT_JS = `
const net = require('node:net');
const [host, port, data] = process.argv.slice(2);
// data '-': a server-first client, which sends nothing and leaves after the greeting.
const s = net.connect({ host, port: Number(port) }, () => { if (data !== '-') s.end(data); });
let out = '';
s.on('data', (d) => { out += d; if (data === '-') s.end(); });
s.on('close', () => { process.stdout.write(out); process.exit(out ? 0 : 3); });
s.on('error', (e) => { process.stderr.write(e.message); process.exit(2); });
setTimeout(() => { process.stderr.write('client timeout'); process.exit(4); }, 20000);
`;

/** Apps of the server pods: HTTP on 8080, a TCP echo on 9000, plain servers on 7000-7002. */
const APPS_JS = `
const http = require('node:http'), net = require('node:net');
const which = process.argv[2];
if (which === 'web')
  http.createServer((q, r) => { q.resume(); r.end('web saw ' + q.headers.host + ' from ' + q.socket.remoteAddress); })
    .listen(8080, '0.0.0.0', () => console.log('web ready'));
else {
  net.createServer({ allowHalfOpen: true }, (s) => {
    let got = ''; s.on('data', (d) => (got += d)); s.on('end', () => s.end('echo ' + got));
  }).listen(9000, '0.0.0.0');
  http.createServer((q, r) => { q.resume(); r.end('plain http from ' + q.socket.remoteAddress); }).listen(7002, '0.0.0.0');
  // Server-first (as a database greets its client).
  net.createServer((s) => { s.on('error', () => {}); s.end('banner 9001'); }).listen(9001, '0.0.0.0');
  for (const p of [7000, 7001])
    net.createServer({ allowHalfOpen: true }, (s) => { s.resume(); s.on('end', () => s.end('plain' + p + ' from ' + s.remoteAddress)); })
      .listen(p, '0.0.0.0');
  setTimeout(() => console.log('tcp ready'), 100);
}
`;

function proxyConfig(service: string, extra: Record<string, unknown>, services: unknown[] = []): string {
  const file = join(work, `${service}.json`);
  writeFileSync(
    file,
    JSON.stringify({ proxy: { service, drainTimeout: '1s', ...extra }, services }, null, 2),
  );
  chmodSync(file, 0o644);
  return file;
}

function capture(h: Host, args = ''): void {
  const r = spawnSync(
    'sh',
    ['-c', `ip netns exec ${h.netns} ${HEXMESH} capture --proxy-uid ${PROXY_UID} ${args}`],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, `hexmesh capture in ${h.name}: ${r.stderr}${r.stdout}`);
}

/** The sidecar as the injector runs it: as PROXY_UID, in the pod's namespace. */
function startSidecar(h: Host, service: string, config: string) {
  return net.start(
    h,
    `${service} sidecar`,
    `exec setpriv --reuid=${PROXY_UID} --regid=${PROXY_UID} --clear-groups ${HEXMESH} proxy -c ${config}`,
    { HOME: work },
  );
}

before(async () => {
  if (skip !== false) return;
  assert.equal(reason, undefined, `capture test prerequisite missing in CI: ${reason}`);
  // The bundle is built here, as root: the sidecars (uid 2102) may not write into the checkout.
  const { buildBundle, bundleIsFresh } = (await import(join(ROOT, 'scripts', 'bundle.mjs'))) as {
    buildBundle(): Promise<void>;
    bundleIsFresh(): boolean;
  };
  if (!bundleIsFresh()) await buildBundle();
  work = mkdtempSync(join(tmpdir(), 'hexmesh-capture-'));
  chmodSync(work, 0o755);
  writeFileSync(join(work, 'client.cjs'), CLIENT_JS);
  writeFileSync(join(work, 'apps.cjs'), APPS_JS);
  net = HostNetwork.create(3, SUBNET);
  [a, b, c] = net.hosts;
  // A default route: a cluster IP must be routable for connect() to send its SYN, which the
  // capture rules then redirect. Nothing unredirected can leave the test's own bridge.
  for (const h of net.hosts) spawnSync('ip', ['-n', h.netns, 'route', 'add', 'default', 'dev', 'eth0']);

  const ca = await TestCa.create('hexmesh.test', 'capture');
  pem = new PemDir();
  const files = async (sa: string) => pem.identityFiles(sa, await ca.issue(ca.id('default', sa)), ca.rootPem);
  const tls = { client: await files('client'), web: await files('web'), tcpecho: await files('tcpecho') };
  chownSync(pem.path, PROXY_UID, PROXY_UID);
  for (const f of readdirSync(pem.path)) chownSync(join(pem.path, f), PROXY_UID, PROXY_UID);

  // Client pod: outbound capture; port 7000 excluded (reached directly, unmeshed).
  capture(a, '--exclude-outbound-ports 7000');
  // Server pods: everything inbound captured, but c's plain servers on 7000/7001.
  capture(b);
  capture(c, '--exclude-inbound-ports 7000,7001,7002');

  net.start(b, 'web app', `exec "${process.execPath}" apps.cjs web`, {}, work);
  net.start(c, 'tcp apps', `exec "${process.execPath}" apps.cjs tcp`, {}, work);
  // The client's view of the mesh: two Services with cluster IPs, as the control plane
  // sends them from Kubernetes Services (translate.ts).
  const services = [
    {
      name: 'web',
      addresses: [WEB_VIP],
      ports: [{ port: 80, protocol: 'http' }],
      endpoints: [{ address: b.ip, port: 8080 }],
    },
    {
      name: 'tcpecho',
      addresses: [ECHO_VIP],
      ports: [{ port: 9000, protocol: 'tcp' }],
      endpoints: [{ address: c.ip, port: 9000 }],
    },
    {
      // c's sidecar (identity tcpecho) delivers it to the original port, 9001.
      name: 'banner',
      addresses: [BANNER_VIP],
      ports: [{ port: 9001, protocol: 'tcp' }],
      endpoints: [{ address: c.ip, port: 9001, identity: ca.id('default', 'tcpecho') }],
    },
  ];
  const procs = [
    startSidecar(
      a,
      'client',
      proxyConfig(
        'client',
        {
          tls: { ...tls.client, mode: 'STRICT' },
          capture: { outboundTrafficPolicy: 'ALLOW_ANY' },
          // Longer than any client here waits: a connection that waited for detection would fail.
          detectTimeout: '60s',
        },
        services,
      ),
    ),
    startSidecar(
      b,
      'web',
      proxyConfig('web', {
        app: { port: 8080 },
        tls: { ...tls.web, mode: 'STRICT' },
        capture: {},
      }),
    ),
    startSidecar(
      c,
      'tcpecho',
      proxyConfig('tcpecho', {
        app: { port: 9000, protocol: 'tcp' },
        tls: { ...tls.tcpecho, mode: 'STRICT' },
        capture: {},
      }),
    ),
  ];
  clientSidecar = procs[0];
  for (const p of procs)
    await until(`${p.label} to start`, async () => (/outbound=/.test(p.output()) ? true : undefined));
});

after(() => {
  net?.destroySync();
  pem?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

test(
  'capture: curl to a Service cluster IP goes through both sidecars over mTLS, and the proxy is not looped',
  { skip, timeout: 300_000 },
  async () => {
    const r = await until('curl through the capture', async () => {
      const x = await net.run(a, `curl -s --max-time 10 http://${WEB_VIP}/`);
      return x.code === 0 && x.stdout.startsWith('web saw') ? x : undefined;
    });
    // The app got the request the client made (Host: the cluster IP), from its own sidecar: the
    // inbound sidecar reaches the app at the pod address (the original destination), not 127.0.0.1.
    assert.equal(r.stdout, `web saw ${WEB_VIP} from ${b.ip}`);
    for (let i = 0; i < 4; i++) {
      const x = await net.run(
        a,
        `curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://${WEB_VIP}:80/x`,
      );
      assert.equal(x.stdout, '200', x.stderr);
    }
    // Counted once each by the client's sidecar, over mTLS, and by the server's (STRICT: it
    // would have refused anything but mTLS). Exactly 5: a looped connection would be counted again.
    const out = { direction: 'outbound', src_service: 'client', dst_service: 'web', tls: 'true' };
    assert.equal(await metric(a, 'hexmesh_requests_total', out), 5);
    const inb = { direction: 'inbound', dst_service: 'web', tls: 'true' };
    assert.equal(await metric(b, 'hexmesh_requests_total', inb), 5);
    // The proxy's own connection (to b's pod address) matched the uid exclusion and left the pod.
    const counters = spawnSync(
      'ip',
      ['netns', 'exec', a.netns, 'iptables', '-t', 'nat', '-L', 'HEXMESH_OUTPUT', '-v', '-n', '-x'],
      {
        encoding: 'utf8',
      },
    ).stdout;
    const uidLine = counters.split('\n').find((l) => l.includes(`owner UID match ${PROXY_UID}`));
    assert.ok(uidLine && Number(uidLine.trim().split(/\s+/)[0]) > 0, `uid rule never matched:\n${counters}`);
  },
);

test(
  'capture: a raw TCP client to a cluster IP is tunnelled to the owning service over mTLS',
  { skip, timeout: 300_000 },
  async () => {
    const r = await tcpClient(a, ECHO_VIP, 9000, 'ping');
    assert.equal(r.code, 0, `${r.stderr}\n${net.logs()}`);
    assert.equal(r.stdout, 'echo ping');
    assert.equal(
      await metric(a, 'hexmesh_tcp_connections_total', { direction: 'outbound', peer: 'tcpecho' }),
      1,
    );
    assert.equal(
      await metric(c, 'hexmesh_tcp_connections_total', { direction: 'inbound', peer: 'tcpecho' }),
      1,
    );
    // c is STRICT: only an mTLS tunnel could have reached its app.
    assert.equal(await metric(c, 'hexmesh_tls_plaintext_refused_total', {}), 0);
  },
);

test(
  'capture: a server-first protocol on a tcp service port is not held for protocol detection',
  { skip, timeout: 120_000 },
  async () => {
    // The client sends nothing: only the greeting of the app in c opens the conversation.
    const r = await tcpClient(a, BANNER_VIP, 9001, '-');
    assert.equal(r.code, 0, `${r.stderr}\n${net.logs()}`);
    assert.equal(r.stdout, 'banner 9001');
    assert.equal(
      await metric(a, 'hexmesh_tcp_connections_total', { direction: 'outbound', peer: 'banner' }),
      1,
    );
  },
);

test(
  'capture: an excluded port bypasses the sidecar; another non-mesh address passes through it',
  { skip, timeout: 300_000 },
  async () => {
    const before = await metric(a, 'hexmesh_tcp_connections_total', {
      direction: 'outbound',
      peer: 'passthrough',
    });
    const excluded = await tcpClient(a, c.ip, 7000, 'x');
    assert.equal(excluded.code, 0, excluded.stderr);
    assert.equal(excluded.stdout, `plain7000 from ${a.ip}`);
    assert.equal(
      await metric(a, 'hexmesh_tcp_connections_total', { direction: 'outbound', peer: 'passthrough' }),
      before,
    );
    // 7001 is captured, but c's address is no mesh service: ALLOW_ANY passes it through as is.
    const through = await tcpClient(a, c.ip, 7001, 'x');
    assert.equal(through.code, 0, through.stderr);
    assert.equal(through.stdout, `plain7001 from ${a.ip}`);
    assert.equal(
      await metric(a, 'hexmesh_tcp_connections_total', { direction: 'outbound', peer: 'passthrough' }),
      before + 1,
    );
    // HTTP to a non-mesh address: the HTTP path finds no service for its Host and passes the
    // request through to where it was going, counted as a request to `passthrough`.
    const web = await net.run(a, `curl -s --max-time 10 http://${c.ip}:7002/`);
    assert.equal(web.stdout, `plain http from ${a.ip}`, web.stderr);
    assert.equal(
      await metric(a, 'hexmesh_requests_total', { direction: 'outbound', dst_service: 'passthrough' }),
      1,
    );
  },
);

test(
  'capture: REGISTRY_ONLY closes connections to non-mesh addresses (config reload)',
  { skip, timeout: 300_000 },
  async () => {
    const file = join(work, 'client.json');
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { proxy: { capture: object } };
    doc.proxy.capture = { outboundTrafficPolicy: 'REGISTRY_ONLY' };
    writeFileSync(file, JSON.stringify(doc));
    clientSidecar.child.kill('SIGHUP');
    await until('the reload', async () => (/reloaded/.test(clientSidecar.output()) ? true : undefined));
    const r = await tcpClient(a, c.ip, 7001, 'x');
    assert.notEqual(r.code, 0, `connection should have been closed, got ${JSON.stringify(r.stdout)}`);
    assert.equal(
      await metric(a, 'hexmesh_tcp_connections_total', { direction: 'outbound', peer: 'blackhole' }),
      1,
    );
    // HTTP for no mesh service: refused as without capture (404 unknown-service).
    const web = await net.run(a, `curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://${c.ip}:7002/`);
    assert.equal(web.stdout, '404', web.stderr);
    // Mesh services still work.
    const ok = await tcpClient(a, ECHO_VIP, 9000, 'again');
    assert.equal(ok.stdout, 'echo again', ok.stderr);
  },
);

test(
  'capture: re-running hexmesh capture replaces the rules instead of adding a second copy',
  { skip, timeout: 120_000 },
  async () => {
    const first = natRules(a);
    capture(a, '--exclude-outbound-ports 7000');
    capture(a, '--exclude-outbound-ports 7000');
    assert.equal(natRules(a), first);
    assert.equal(first.split('\n').filter((l) => l === '-A OUTPUT -p tcp -j HEXMESH_OUTPUT').length, 1);
    assert.equal(first.split('\n').filter((l) => l === '-A PREROUTING -p tcp -j HEXMESH_INBOUND').length, 1);
    // Traffic still flows through the replaced rules.
    const r = await net.run(a, `curl -s --max-time 10 http://${WEB_VIP}/`);
    assert.match(r.stdout, /^web saw/, r.stderr);
  },
);
