/**
 * `tls: { fromCa }` (hexmesh control --tls): the control plane serves HTTPS with a certificate
 * from its own CA, and a proxy authenticates by mTLS with its workload certificate once it
 * has one, so a reconnect after its join token expired still works. Real TLS, real curl.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { ControlPlane, type ControlPlaneOptions } from '../../src/control/control-plane.ts';
import { CertificateAuthority } from '../../src/identity/ca.ts';
import { createKeyAndCsr } from '../../src/identity/csr.ts';
import { controlRequest } from '../../src/identity/control-tls.ts';
import { startControlledProxy } from '../../src/proxy/control-client/controlled-proxy.ts';
import type { Store } from '../../src/store/store.ts';
import { tempDir } from '../identity/helpers.ts';
import { tempStore } from './helpers.ts';

const any = { address: '127.0.0.1', port: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startTlsCp(store: Store, port = 0, extra: Partial<ControlPlaneOptions> = {}) {
  const cp = new ControlPlane({
    listen: { address: '127.0.0.1', port },
    store,
    auth: { mode: 'enforce' },
    identity: {},
    discovery: true,
    tls: { fromCa: true },
    ...extra,
  });
  const a = await cp.start();
  return { cp, url: `https://127.0.0.1:${a.port}`, port: a.port };
}

async function until(what: string, ms: number, fn: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(50);
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}

function get(url: string, opts: tls.ConnectionOptions | undefined, headers: Record<string, string> = {}) {
  return controlRequest(url, { headers, signal: AbortSignal.timeout(10_000) }, opts).then((r) => ({
    ...r,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers of several shapes
    json: JSON.parse(r.body) as Record<string, any>,
  }));
}

/** Open the discovery stream with `opts` and say hello as `service`; resolves with the close code and reason, or the HTTP status of a refused upgrade. */
function discoveryAs(
  url: string,
  opts: tls.ConnectionOptions,
  service: string,
): Promise<{ status?: number; code?: number; reason?: string; snapshot?: boolean }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^https/, 'wss')}/v1/discovery`, {
      ...opts,
      handshakeTimeout: 5000,
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => {});
    ws.on('open', () =>
      ws.send(
        JSON.stringify({
          type: 'hello',
          node: { id: `${service}-probe`, service, namespace: 'default', address: '127.0.0.1' },
        }),
      ),
    );
    ws.on('message', (data) => {
      if ((JSON.parse(data.toString()) as { type?: string }).type !== 'snapshot') return;
      resolve({ snapshot: true });
      ws.close(1000);
    });
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

test(
  'proxy: first certificate with a join token, then mTLS to the API; reconnects after the token expired and a control plane restart',
  { timeout: 90_000 },
  async () => {
    const st = await tempStore();
    let t = await startTlsCp(st.store);
    const bundle = (await t.cp.identity.bundle()).pem;
    const tokenTtl = 3000;
    const created = Date.now();
    const join = await t.cp.identity.tokens.create('default', 'web', tokenTtl);
    const proxy = await startControlledProxy({
      control: [t.url],
      settings: { service: 'web', inbound: any, outbound: any, admin: any },
      identity: { joinToken: join.token, controlCaPem: bundle },
      client: { backoff: { initial: 50, max: 300 }, log: () => {} },
    });
    try {
      await proxy.identity!.ready(AbortSignal.timeout(20_000));
      await proxy.client.firstConfig;
      const id = proxy.identity!.current()!.spiffeId;
      assert.equal(id, 'spiffe://hexmesh.local/ns/default/sa/web');

      // The server sees the workload principal, authenticated by the client certificate.
      const who = await get(`${t.url}/v1/auth/whoami`, proxy.identity!.controlTls(t.url));
      assert.equal(who.status, 200, who.body);
      assert.deepEqual(
        { kind: who.json.kind, via: who.json.via, spiffeId: who.json.spiffeId },
        { kind: 'workload', via: 'mtls', spiffeId: id },
      );

      // Let the join token expire, then restart the control plane on the same port and store.
      await sleep(Math.max(0, created + tokenTtl + 300 - Date.now()));
      await assert.rejects(t.cp.identity.tokens.verify(join.token), /expired|unknown|invalid/i);
      const before = proxy.client.connects;
      await t.cp.destroy();
      t = await startTlsCp(st.store, t.port);
      await until(
        'the proxy to reconnect',
        20_000,
        () => proxy.client.connects > before && proxy.client.connected,
      );
      const admin = (await t.cp.tokens.create({ name: 'admin', role: 'admin' })).token;
      const adminTls = { ca: bundle };
      await until('the new replica to see the proxy acked', 20_000, async () => {
        const r = await get(`${t.url}/v1/proxies`, adminTls, { authorization: `Bearer ${admin}` });
        return (r.json as unknown as { id: string; acked: boolean }[]).some(
          (p) => p.id === proxy.id && p.acked,
        );
      });
    } finally {
      await proxy.close();
      await t.cp.close();
      await st.close();
    }
  },
);

test(
  'a client certificate for service A cannot open discovery as B; one from another CA is refused',
  { timeout: 60_000 },
  async () => {
    const st = await tempStore();
    const other = await tempStore();
    const t = await startTlsCp(st.store);
    try {
      const bundle = (await t.cp.identity.bundle()).pem;
      const join = await t.cp.identity.tokens.create('default', 'a', 60_000);
      const kc = await createKeyAndCsr({});
      const issued = await t.cp.identity.sign({ csr: kc.csrPem, token: join.token });
      const asA = { ca: bundle, cert: issued.certChainPem, key: kc.keyPem };

      const own = await discoveryAs(t.url, asA, 'a');
      assert.deepEqual(own, { snapshot: true }, 'A may open its own stream');
      const b = await discoveryAs(t.url, asA, 'b');
      assert.equal(b.code, 1008);
      assert.match(b.reason ?? '', /may act only for service a/);

      // Another mesh's CA, same trust domain: the TLS server does not verify it.
      const foreign = new CertificateAuthority(other.store, {});
      const fj = await foreign.tokens.create('default', 'a', 60_000);
      const fk = await createKeyAndCsr({});
      const fi = await foreign.sign({ csr: fk.csrPem, token: fj.token });
      const asForeign = { ca: bundle, cert: fi.certChainPem, key: fk.keyPem };
      const refused = await discoveryAs(t.url, asForeign, 'a');
      assert.equal(refused.status, 401);
      const api = await get(`${t.url}/v1/proxies`, asForeign);
      assert.equal(api.status, 401);
      assert.match(api.json.error.message, /client certificate refused/);
      const who = await get(`${t.url}/v1/auth/whoami`, asForeign);
      assert.equal(who.status, 401, 'not taken for a workload');
    } finally {
      await t.cp.close();
      await st.close();
      await other.close();
    }
  },
);

test(
  'the serving certificate: SPIFFE ID and IP/DNS SANs, trusted by curl with the CA bundle and a bearer token; renewed before expiry',
  { timeout: 60_000 },
  async () => {
    const st = await tempStore();
    const dir = await tempDir();
    const t = await startTlsCp(st.store, 0, {
      tls: { fromCa: true, advertise: ['cp.example.test'], ttlMs: 4000 },
    });
    try {
      const peer = await new Promise<tls.DetailedPeerCertificate>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: t.port, rejectUnauthorized: false }, () => {
          resolve(s.getPeerCertificate(true));
          s.end();
        });
        s.on('error', reject);
      });
      const sans = (peer.subjectaltname ?? '').split(', ');
      for (const want of [
        'URI:spiffe://hexmesh.local/ns/hexmesh-system/sa/control-plane',
        'IP Address:127.0.0.1',
        'DNS:localhost',
        'DNS:cp.example.test',
      ])
        assert.ok(sans.includes(want), `${want} in ${peer.subjectaltname}`);

      const bundleFile = join(dir.dir, 'ca-bundle.pem');
      await writeFile(bundleFile, (await t.cp.identity.bundle()).pem);
      const admin = (await t.cp.tokens.create({ name: 'curl', role: 'admin' })).token;
      const headerFile = join(dir.dir, 'auth-header');
      await writeFile(headerFile, `authorization: Bearer ${admin}\n`, { mode: 0o600 });
      for (const host of ['127.0.0.1', 'localhost']) {
        const { stdout } = await promisify(execFile)(
          'curl',
          [
            '-sS',
            '--fail-with-body',
            '--cacert',
            bundleFile,
            '-H',
            `@${headerFile}`,
            `https://${host}:${t.port}/v1/auth/whoami`,
          ],
          { timeout: 20_000 },
        );
        assert.equal(JSON.parse(stdout).role, 'admin', host);
      }
      // Without the bundle curl refuses the server (not a publicly trusted certificate).
      await assert.rejects(
        promisify(execFile)('curl', ['-sS', `https://127.0.0.1:${t.port}/v1/health`], { timeout: 20_000 }),
      );

      const first = t.cp.servingTls!.current()!.serial;
      await until(
        'the serving certificate to renew',
        15_000,
        () => t.cp.servingTls!.current()!.serial !== first,
      );
      const after = await get(`https://127.0.0.1:${t.port}/v1/health`, {
        ca: (await t.cp.identity.bundle()).pem,
      });
      assert.equal(after.status, 200);
    } finally {
      await t.cp.close();
      await st.close();
      await dir.close();
    }
  },
);

test(
  'a root rotation reaches the TLS server: certificates from the new root authenticate without a restart',
  { timeout: 60_000 },
  async () => {
    const st = await tempStore();
    const t = await startTlsCp(st.store, 0, { tls: { fromCa: true } });
    try {
      await t.cp.identity.startRotation();
      const bundle = (await t.cp.identity.bundle()).pem;
      const join = await t.cp.identity.tokens.create('default', 'a', 60_000);
      const kc = await createKeyAndCsr({});
      const issued = await t.cp.identity.sign({ csr: kc.csrPem, token: join.token });
      const opts = { ca: bundle, cert: issued.certChainPem, key: kc.keyPem };
      await until('the new root to be trusted for client certificates', 10_000, async () => {
        const r = await get(`${t.url}/v1/auth/whoami`, opts);
        return r.status === 200 && r.json.via === 'mtls';
      });
    } finally {
      await t.cp.close();
      await st.close();
    }
  },
);
