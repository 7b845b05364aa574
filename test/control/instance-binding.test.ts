/**
 * Issue 10 (review): credentials beyond scope. Instances of one service are isolated from
 * each other, not only services from services: a join token made for one instance, the
 * workload certificate it gets (and every renewal of it) and the discovery session either
 * opens act for that instance only — no deregistering, re-registering, health reports,
 * heartbeats or discovery session of a sibling instance, nothing of another service — and
 * no credential of one service gets a certificate for another. `hexmesh up` gives each
 * sidecar a join token bound to its instance. Real control plane over HTTPS (mTLS clients),
 * real WebSocket discovery streams, auth enforced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { WebSocket } from 'ws';
import { ControlPlane } from '../../src/control/control-plane.ts';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { createKeyAndCsr, renewalSignature } from '../../src/identity/csr.ts';
import { controlRequest } from '../../src/identity/control-tls.ts';
import { JoinTokenIssuer } from '../../src/runtime/join-token-issuer.ts';
import { tempStore } from './helpers.ts';

interface Cp {
  cp: ControlPlane;
  url: string;
  admin: string;
  bundle: string;
  close(): Promise<void>;
}

async function startCp(): Promise<Cp> {
  const st = await tempStore();
  const cp = new ControlPlane({
    listen: { address: '127.0.0.1', port: 0 },
    store: st.store,
    auth: { mode: 'enforce' },
    identity: {},
    discovery: true,
    tls: { fromCa: true },
  });
  const a = await cp.start();
  const admin = (await cp.tokens.create({ name: 'admin', role: 'admin' })).token;
  const bundle = (await cp.identity.bundle()).pem;
  return {
    cp,
    url: `https://127.0.0.1:${a.port}`,
    admin,
    bundle,
    close: async () => {
      await cp.close();
      await st.close();
    },
  };
}

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers of several shapes
  json: any;
}

/** One API call, as `as` (a bearer token, or mTLS with a workload certificate). */
async function call(
  t: Cp,
  method: string,
  path: string,
  body: unknown,
  as: { token: string } | { cert: string; key: string },
): Promise<Answer> {
  const headers: Record<string, string> = {};
  let opts: tls.ConnectionOptions = { ca: t.bundle };
  if ('token' in as) headers.authorization = `Bearer ${as.token}`;
  else opts = { ...opts, cert: as.cert, key: as.key };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await controlRequest(
    t.url + path,
    {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    },
    opts,
  );
  return { status: r.status, json: r.body ? JSON.parse(r.body) : undefined };
}

async function joinToken(t: Cp, serviceAccount: string, instance?: string): Promise<string> {
  const r = await call(
    t,
    'POST',
    '/v1/identity/tokens',
    { namespace: 'default', serviceAccount, ...(instance ? { instance } : {}) },
    { token: t.admin },
  );
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json.token as string;
}

async function certificate(
  t: Cp,
  proof: { token: string } | { renew: { cert: string; key: string } },
  proxyId?: string,
): Promise<Answer & { key: string }> {
  const kc = await createKeyAndCsr({});
  const body: Record<string, unknown> = { csr: kc.csrPem, ...(proxyId ? { proxyId } : {}) };
  if ('token' in proof) body.token = proof.token;
  else
    body.renewal = { certificate: proof.renew.cert, signature: renewalSignature(proof.renew.key, kc.csrPem) };
  const r = await call(t, 'POST', '/v1/identity/certificate', body, { token: t.admin });
  return { ...r, key: kc.keyPem };
}

interface Stream {
  ws: WebSocket;
  first: Promise<{ snapshot?: true; code?: number; reason?: string; status?: number }>;
  closed?: { code: number; reason: string };
}

/** A discovery stream as `as`, saying hello as instance `id` of `service`. */
function discovery(
  t: Cp,
  as: { token: string } | { cert: string; key: string },
  service: string,
  id: string,
): Stream {
  const ws = new WebSocket(`${t.url.replace(/^https/, 'wss')}/v1/discovery`, {
    ca: t.bundle,
    handshakeTimeout: 5000,
    ...('token' in as
      ? { headers: { authorization: `Bearer ${as.token}` } }
      : { cert: as.cert, key: as.key }),
  });
  const s: Stream = { ws, first: undefined as never };
  s.first = new Promise((resolve) => {
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => {});
    ws.on('open', () =>
      ws.send(
        JSON.stringify({ type: 'hello', node: { id, service, namespace: 'default', address: '127.0.0.1' } }),
      ),
    );
    ws.on('message', (d) => {
      if ((JSON.parse(String(d)) as { type?: string }).type === 'snapshot') resolve({ snapshot: true });
    });
    ws.on('close', (code, reason) => {
      s.closed = { code, reason: String(reason) };
      resolve({ code, reason: String(reason) });
    });
  });
  return s;
}

test('issue 10: a join token bound to instance web-1 opens discovery as web-1 only, and gets a certificate bound to web-1', async () => {
  const t = await startCp();
  const streams: Stream[] = [];
  try {
    const web1 = await joinToken(t, 'web', 'web-1');
    const web2 = await joinToken(t, 'web', 'web-2');
    const own2 = discovery(t, { token: web2 }, 'web', 'web-2');
    streams.push(own2);
    assert.deepEqual(await own2.first, { snapshot: true });
    // web-1's token, saying hello as its sibling: refused, and web-2's session is not kicked.
    const taken = discovery(t, { token: web1 }, 'web', 'web-2');
    streams.push(taken);
    const refused = await taken.first;
    assert.equal(refused.code, 1008, JSON.stringify(refused));
    assert.match(refused.reason ?? '', /may act only for instance web-1, not web-2/);
    assert.equal(own2.closed, undefined, "web-2's own stream was kicked");
    const own1 = discovery(t, { token: web1 }, 'web', 'web-1');
    streams.push(own1);
    assert.deepEqual(await own1.first, { snapshot: true });

    // Its certificate: for web-1 (no proxy id, or its own), never in web-2's name.
    const other = await certificate(t, { token: web1 }, 'web-2');
    assert.equal(other.status, 403, JSON.stringify(other.json));
    assert.match(other.json.error.message, /bound to instance web-1/);
    const issued = await certificate(t, { token: web1 });
    assert.equal(issued.status, 200, JSON.stringify(issued.json));
    assert.match(new X509Certificate(issued.json.certChainPem).subject, /CN=web-1/);
    const who = await call(t, 'GET', '/v1/auth/whoami', undefined, {
      cert: issued.json.certChainPem,
      key: issued.key,
    });
    assert.equal(who.json.instance, 'web-1');
    assert.equal(who.json.spiffeId, 'spiffe://hexmesh.local/ns/default/sa/web');
  } finally {
    for (const s of streams) s.ws.terminate();
    await t.close();
  }
});

test('issue 10: a workload certificate of web-1 cannot deregister, re-register, report, keep alive or open discovery for web-2, nor touch another service; renewals keep the instance', async () => {
  const t = await startCp();
  const streams: Stream[] = [];
  try {
    const first = await certificate(t, { token: await joinToken(t, 'web', 'web-1') }, 'web-1');
    assert.equal(first.status, 200, JSON.stringify(first.json));
    // A renewal carries the instance over and cannot move it to web-2.
    const first1 = { cert: first.json.certChainPem as string, key: first.key };
    const moved = await certificate(t, { renew: first1 }, 'web-2');
    assert.equal(moved.status, 403, JSON.stringify(moved.json));
    const renewed = await certificate(t, { renew: first1 });
    assert.equal(renewed.status, 200, JSON.stringify(renewed.json));
    assert.match(new X509Certificate(renewed.json.certChainPem).subject, /CN=web-1/);
    const web1 = { cert: renewed.json.certChainPem as string, key: renewed.key };

    // web-2 and exact-1, registered by the operator.
    const reg = async (service: string, id: string, as: { token: string } | { cert: string; key: string }) =>
      call(t, 'PUT', '/v1/catalog/register', { id, service, address: '127.0.0.1', port: 9 }, as);
    const web2 = await reg('web', 'web-2', { token: t.admin });
    assert.equal(web2.status, 200, JSON.stringify(web2.json));
    assert.equal((await reg('exact', 'exact-1', { token: t.admin })).status, 200);

    const denied = (r: Answer, what: string) => {
      assert.equal(r.status, 403, `${what}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error.code, 'HEXMESH_ERR_DENIED', what);
    };
    denied(await reg('web', 'web-2', web1), 're-register web-2');
    denied(
      await call(t, 'PUT', '/v1/catalog/status/default/web/web-2', { status: 'critical' }, web1),
      'status',
    );
    denied(await call(t, 'PUT', `/v1/catalog/heartbeat/${web2.json.lease}`, undefined, web1), 'heartbeat');
    denied(await call(t, 'PUT', '/v1/catalog/deregister/default/web/web-2', undefined, web1), 'deregister');
    denied(await reg('exact', 'exact-2', web1), 'register for exact');
    denied(await call(t, 'PUT', '/v1/catalog/deregister/default/exact/exact-1', undefined, web1), 'exact');
    denied(await call(t, 'GET', '/v1/kv/config/web-2', undefined, web1), 'read KV');
    denied(await call(t, 'GET', '/v1/identity/certificates', undefined, web1), 'list certificates');
    const listed = await call(t, 'GET', '/v1/catalog/service/default/web', undefined, { token: t.admin });
    assert.deepEqual(
      listed.json.map((i: { id: string; status: string }) => [i.id, i.status]).sort(),
      [['web-2', web2.json.status]],
      'web-2 untouched',
    );

    const sibling = discovery(t, web1, 'web', 'web-2');
    streams.push(sibling);
    const closed = await sibling.first;
    assert.equal(closed.code, 1008, JSON.stringify(closed));
    assert.match(closed.reason ?? '', /may act only for instance web-1, not web-2/);

    // Its own instance: all of it works.
    const own = await reg('web', 'web-1', web1);
    assert.equal(own.status, 200, JSON.stringify(own.json));
    assert.equal(
      (await call(t, 'PUT', `/v1/catalog/heartbeat/${own.json.lease}`, undefined, web1)).status,
      200,
    );
    assert.equal(
      (await call(t, 'PUT', '/v1/catalog/status/default/web/web-1', { status: 'warning' }, web1)).status,
      200,
    );
    assert.equal(
      (await call(t, 'PUT', '/v1/catalog/deregister/default/web/web-1', undefined, web1)).status,
      200,
    );
  } finally {
    for (const s of streams) s.ws.terminate();
    await t.close();
  }
});

test('issue 10: no credential of web gets a certificate for exact (join token, certificate, renewal)', async () => {
  const t = await startCp();
  try {
    const webToken = await joinToken(t, 'web');
    const exactToken = await joinToken(t, 'exact');
    // A CSR asking for exact, with web's token.
    const kc = await createKeyAndCsr({ spiffeId: 'spiffe://hexmesh.local/ns/default/sa/exact' });
    const asked = await call(
      t,
      'POST',
      '/v1/identity/certificate',
      { csr: kc.csrPem, token: webToken },
      { token: t.admin },
    );
    assert.equal(asked.status, 403, JSON.stringify(asked.json));
    // web's certificate, presenting exact's token (mTLS caller web).
    const web = await certificate(t, { token: webToken });
    const asWeb = { cert: web.json.certChainPem as string, key: web.key };
    const kc2 = await createKeyAndCsr({});
    const crossed = await call(
      t,
      'POST',
      '/v1/identity/certificate',
      { csr: kc2.csrPem, token: exactToken },
      asWeb,
    );
    assert.equal(crossed.status, 403, JSON.stringify(crossed.json));
    assert.match(
      crossed.json.error.message,
      /may not get a certificate for spiffe:\/\/hexmesh\.local\/ns\/default\/sa\/exact/,
    );
    // A renewal of web's certificate with a CSR asking for exact.
    const kc3 = await createKeyAndCsr({ spiffeId: 'spiffe://hexmesh.local/ns/default/sa/exact' });
    const renewal = { certificate: asWeb.cert, signature: renewalSignature(asWeb.key, kc3.csrPem) };
    const renewed = await call(t, 'POST', '/v1/identity/certificate', { csr: kc3.csrPem, renewal }, asWeb);
    assert.equal(renewed.status, 403, JSON.stringify(renewed.json));
  } finally {
    await t.close();
  }
});

test('issue 10: the runtime gives each instance its own join token, bound to its id', async () => {
  const t = await startCp();
  try {
    const client = new ControlClient(t.url, { token: t.admin, ca: t.bundle });
    const issuer = new JoinTokenIssuer(client);
    const [a, b, again] = await Promise.all([
      issuer.get('default', 'web', 'web-1'),
      issuer.get('default', 'web', 'web-2'),
      issuer.get('default', 'web', 'web-1'),
    ]);
    assert.notEqual(a, b);
    assert.equal(a, again, 'one token per instance, shared by its restarts');
    for (const [token, id] of [
      [a, 'web-1'],
      [b, 'web-2'],
    ]) {
      const who = await call(t, 'GET', '/v1/auth/whoami', undefined, { token });
      assert.equal(who.json.instance, id, JSON.stringify(who.json));
    }
    await issuer.revokeAll();
  } finally {
    await t.close();
  }
});
