/**
 * Stale credentials (docs/api-security.md, "Long-lived streams"): a credential revoked or
 * expired while a stream it opened is still up must stop that stream — a watch, a blocking
 * query, a live tap, a discovery WebSocket — as Kubernetes closes watches when their token
 * expires and Consul re-checks a blocking query's ACL token. And a connection kept alive is
 * authenticated again on every request. Real control planes, real sockets, real TLS.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { WebSocket } from 'ws';
import { ControlPlane } from '../../src/control/control-plane.ts';
import { createKeyAndCsr } from '../../src/identity/csr.ts';
import type { Store } from '../../src/store/store.ts';
import { startViewsMesh } from '../cli/mesh-views-support.ts';
import { call, service, startCp, tempStore, type TestCp } from './helpers.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** `p`, or a failure naming `what` after `ms` (the event did not come). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

interface Line {
  type: string;
  key?: string;
  message?: string;
  reason?: string;
}

/** An NDJSON stream (watch, tap): its lines as they come, and when the server ended it. */
interface NdjsonStream {
  readonly lines: Line[];
  /** The first line (already received or to come) that `pred` accepts. */
  next(pred: (l: Line) => boolean): Promise<Line>;
  /** Resolves when the response is over (ended or cut by the server). */
  readonly ended: Promise<void>;
  close(): void;
}

function ndjson(url: string, path: string, token: string): Promise<NdjsonStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url + path, { headers: bearer(token), agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`${path}: ${res.statusCode}`));
      }
      const lines: Line[] = [];
      const waiters: { pred: (l: Line) => boolean; resolve(l: Line): void }[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const l = JSON.parse(buf.slice(0, nl)) as Line;
          buf = buf.slice(nl + 1);
          lines.push(l);
          for (const w of [...waiters])
            if (w.pred(l)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(l);
            }
        }
      });
      const ended = new Promise<void>((r) => res.on('close', () => r()));
      resolve({
        lines,
        ended,
        next: (pred) => {
          const seen = lines.find(pred);
          return seen ? Promise.resolve(seen) : new Promise((r) => waiters.push({ pred, resolve: r }));
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

/** A discovery stream that said hello and got its snapshot; `closed` resolves with how the server closed it. */
function discoveryStream(
  url: string,
  opts: { headers?: Record<string, string> } & tls.ConnectionOptions,
  node: { id: string; service: string },
): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/discovery`, {
      ...opts,
      handshakeTimeout: 5000,
    });
    const closed = new Promise<{ code: number; reason: string }>((r) =>
      ws.on('close', (code, reason) => r({ code, reason: reason.toString() })),
    );
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      reject(new Error(`discovery upgrade refused: ${res.statusCode}`));
    });
    ws.on('error', () => {});
    ws.on('open', () =>
      ws.send(
        JSON.stringify({ type: 'hello', node: { ...node, namespace: 'default', address: '127.0.0.1' } }),
      ),
    );
    ws.on('message', (d) => {
      if ((JSON.parse(String(d)) as { type: string }).type === 'snapshot') resolve({ ws, closed });
    });
    void closed.then((c) => reject(new Error(`closed before the snapshot: ${c.code} ${c.reason}`)));
  });
}

async function enforcing(): Promise<TestCp & { admin: string }> {
  const t = await startCp({ auth: { mode: 'enforce' }, identity: {}, discovery: true });
  return { ...t, admin: (await t.cp.tokens.create({ name: 'admin', role: 'admin' })).token };
}

const revokeApiToken = async (t: TestCp & { admin: string }, id: string) =>
  assert.equal(
    (await call(t.url, 'DELETE', `/v1/auth/tokens/${id}`, undefined, bearer(t.admin))).status,
    200,
  );

// The write that makes each watch area deliver a line, done as admin.
const WATCHES = [
  {
    area: 'resources',
    role: 'viewer',
    write: (t: TestCp, admin: string, n: number) =>
      call(t.url, 'PUT', `/v1/resources/Service/default/web-${n}`, service(`web-${n}`), bearer(admin)),
  },
  {
    area: 'instances',
    role: 'viewer',
    write: (t: TestCp, admin: string, n: number) =>
      call(
        t.url,
        'PUT',
        '/v1/catalog/register',
        { id: `web-${n}`, service: 'web', address: '127.0.0.1', port: 9000 + n },
        bearer(admin),
      ),
  },
  {
    area: 'kv',
    role: 'operator',
    write: (t: TestCp, admin: string, n: number) =>
      call(t.url, 'PUT', `/v1/kv/app/k${n}`, `v${n}`, bearer(admin)),
  },
] as const;

test(
  'a watch (resources, instances, kv) is closed when its API token is revoked',
  { timeout: 60_000 },
  async () => {
    const t = await enforcing();
    try {
      for (const w of WATCHES) {
        const { token, info } = await t.cp.tokens.create({ name: `watch-${w.area}`, role: w.role });
        const s = await ndjson(t.url, `/v1/watch?prefix=${w.area}`, token);
        assert.equal((await w.write(t, t.admin, 1)).status < 300, true);
        await within(
          s.next((l) => l.type === 'put'),
          5000,
          `${w.area}: first change`,
        );

        await revokeApiToken(t, info.id);
        await within(s.ended, 5000, `${w.area}: end of the watch after its token was revoked`);
        const last = s.lines[s.lines.length - 1];
        assert.equal(last.type, 'error', `${w.area}: ${JSON.stringify(last)}`);
        assert.match(last.message ?? '', new RegExp(`API token ${info.id} was revoked`));
        assert.ok(!(last.message ?? '').includes(token.split('.')[2]), 'no secret in the reason');
        // Nothing after the cut; the token is refused for a new watch too.
        await w.write(t, t.admin, 2);
        assert.equal(
          s.lines.filter((l) => l.type === 'put').length,
          1,
          `${w.area}: no change after revocation`,
        );
        const again = await call(t.url, 'GET', `/v1/watch?prefix=${w.area}`, undefined, bearer(token));
        assert.equal(again.status, 401);
      }
    } finally {
      await t.close();
    }
  },
);

test('a token revoked on one replica ends the watch it opened on another', { timeout: 30_000 }, async () => {
  const st = await tempStore();
  const a = await startCp({ store: st.store, auth: { mode: 'enforce' } });
  const b = await startCp({ store: st.store, auth: { mode: 'enforce' } });
  try {
    const admin = (await a.cp.tokens.create({ name: 'admin', role: 'admin' })).token;
    const { token, info } = await a.cp.tokens.create({ name: 'reader', role: 'operator' });
    const s = await ndjson(b.url, '/v1/watch?prefix=kv', token);
    await call(a.url, 'PUT', '/v1/kv/app/a', 'x', bearer(admin));
    await within(
      s.next((l) => l.type === 'put'),
      5000,
      'first change on replica b',
    );
    assert.equal(
      (await call(a.url, 'DELETE', `/v1/auth/tokens/${info.id}`, undefined, bearer(admin))).status,
      200,
    );
    await within(s.ended, 5000, 'end of the watch on replica b after revocation on replica a');
    assert.match(s.lines[s.lines.length - 1].message ?? '', new RegExp(`API token ${info.id} was revoked`));
  } finally {
    await b.close();
    await a.close();
    await st.close();
  }
});

test('a watch is closed when its API token expires', { timeout: 30_000 }, async () => {
  const t = await enforcing();
  try {
    const { token, info } = await t.cp.tokens.create({ name: 'short', role: 'operator', ttlMs: 1500 });
    const s = await ndjson(t.url, '/v1/watch?prefix=kv', token);
    await call(t.url, 'PUT', '/v1/kv/app/a', 'x', bearer(t.admin));
    await within(
      s.next((l) => l.type === 'put'),
      5000,
      'first change',
    );
    await within(s.ended, 5000, 'end of the watch after its token expired');
    assert.ok(Date.now() >= Date.parse(info.expiresAt!), 'not before the expiry');
    const last = s.lines[s.lines.length - 1];
    assert.equal(last.type, 'error');
    assert.match(last.message ?? '', new RegExp(`API token ${info.id} expired at ${info.expiresAt}`));
  } finally {
    await t.close();
  }
});

test(
  'a blocking query waiting when its token is revoked answers 401, not the data',
  { timeout: 30_000 },
  async () => {
    const t = await enforcing();
    try {
      const { token, info } = await t.cp.tokens.create({ name: 'poller', role: 'operator' });
      const first = await call(t.url, 'GET', '/v1/kv/app/a', undefined, bearer(token));
      assert.equal(first.status, 404);
      const waiting = call(
        t.url,
        'GET',
        `/v1/kv/app/a?index=${first.index}&wait=20s`,
        undefined,
        bearer(token),
      );
      // The query is parked on the index; revoke, then write what it waits for.
      await new Promise((r) => setTimeout(r, 200));
      await revokeApiToken(t, info.id);
      await call(t.url, 'PUT', '/v1/kv/app/a', 'secret-value', bearer(t.admin));
      const r = await within(waiting, 10_000, 'answer of the blocking query');
      assert.equal(r.status, 401, JSON.stringify(r.body));
      assert.match(r.body.error.message, new RegExp(`API token ${info.id} was revoked`));
      assert.ok(!JSON.stringify(r.body).includes('secret-value'));
    } finally {
      await t.close();
    }
  },
);

test('a keep-alive connection authenticates every request: the one after revocation is 401', async () => {
  const t = await enforcing();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (token: string) =>
    new Promise<{ status: number; reused: boolean; port: number }>((resolve, reject) => {
      const req = http.get(`${t.url}/v1/kv/app/a`, { agent, headers: bearer(token) }, (res) => {
        const port = res.socket.localPort!;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, reused: req.reusedSocket, port }));
      });
      req.on('error', reject);
    });
  try {
    const { token, info } = await t.cp.tokens.create({ name: 'kept', role: 'operator' });
    const a = await get(token);
    assert.equal(a.status, 404);
    await revokeApiToken(t, info.id);
    const b = await get(token);
    assert.ok(b.reused && b.port === a.port, 'the same connection');
    assert.equal(b.status, 401);
  } finally {
    agent.destroy();
    await t.close();
  }
});

test(
  'a discovery stream is closed (4401) when its workload API token or join token is revoked or expires',
  { timeout: 60_000 },
  async () => {
    const t = await enforcing();
    try {
      const wl = await t.cp.tokens.create({
        name: 'web-wl',
        role: 'workload',
        subject: { namespace: 'default', service: 'web' },
      });
      const a = await discoveryStream(t.url, { headers: bearer(wl.token) }, { id: 'web-1', service: 'web' });
      await revokeApiToken(t, wl.info.id);
      const ca = await within(a.closed, 5000, 'close after the workload token was revoked');
      assert.equal(ca.code, 4401);
      assert.match(ca.reason, new RegExp(`API token ${wl.info.id} was revoked`));

      const join = await t.cp.identity.tokens.create('default', 'web', 60_000);
      const b = await discoveryStream(
        t.url,
        { headers: bearer(join.token) },
        { id: 'web-2', service: 'web' },
      );
      const del = await call(
        t.url,
        'DELETE',
        `/v1/identity/tokens/${join.info.id}`,
        undefined,
        bearer(t.admin),
      );
      assert.equal(del.status, 200);
      const cb = await within(b.closed, 5000, 'close after the join token was revoked');
      assert.equal(cb.code, 4401);
      assert.match(cb.reason, new RegExp(`join token ${join.info.id} was revoked`));

      const short = await t.cp.identity.tokens.create('default', 'web', 1500);
      const c = await discoveryStream(
        t.url,
        { headers: bearer(short.token) },
        { id: 'web-3', service: 'web' },
      );
      const cc = await within(c.closed, 5000, 'close after the join token expired');
      assert.ok(Date.now() >= Date.parse(short.info.expiresAt), 'not before the expiry');
      assert.equal(cc.code, 4401);
      assert.match(cc.reason, new RegExp(`join token ${short.info.id} expired`));
    } finally {
      await t.close();
    }
  },
);

test('a live tap is ended when its API token is revoked', { timeout: 90_000 }, async () => {
  const m = await startViewsMesh({ auth: true });
  try {
    const { token, info } = await m.cp.cp.tokens.create({ name: 'tapper', role: 'operator' });
    const admin = (await m.cp.cp.tokens.create({ name: 'admin', role: 'admin' })).token;
    const s = await ndjson(m.cp.url, '/v1/tap?service=ratings', token);
    await within(
      s.next((l) => l.type === 'start'),
      10_000,
      'tap start',
    );
    // Load until a request shows (the fan-in attaches to the proxies after 'start').
    const seen = s.next((l) => l.type === 'request');
    let more = true;
    void seen.then(() => (more = false));
    const load = (async () => {
      while (more) await m.load(4);
    })();
    await within(seen, 20_000, 'a tapped request');
    await load;

    const del = await call(m.cp.url, 'DELETE', `/v1/auth/tokens/${info.id}`, undefined, bearer(admin));
    assert.equal(del.status, 200);
    await within(s.ended, 5000, 'end of the tap after its token was revoked');
    const last = s.lines[s.lines.length - 1];
    assert.equal(last.type, 'end', JSON.stringify(last));
    assert.match(last.reason ?? '', new RegExp(`API token ${info.id} was revoked`));
  } finally {
    await m.close();
  }
});

// --- workload certificates (HTTPS, mTLS) -------------------------------------------------

async function startTlsCp(store: Store, identity: { leafTtlMs?: number } = {}) {
  const cp = new ControlPlane({
    listen: { address: '127.0.0.1', port: 0 },
    store,
    auth: { mode: 'enforce' },
    identity,
    discovery: true,
    tls: { fromCa: true },
  });
  const a = await cp.start();
  return { cp, url: `https://127.0.0.1:${a.port}` };
}

/** `GET /v1/auth/whoami` on a TLS connection of its own, resuming `session` when given. */
function whoamiOnce(
  url: string,
  opts: tls.ConnectionOptions,
): Promise<{ status: number; resumed: boolean; session: Buffer | undefined }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const s = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ...opts }, () =>
      s.write('GET /v1/auth/whoami HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n'),
    );
    s.on('session', (b: Buffer) => (session = b));
    let head = '';
    s.on('data', (d: Buffer) => (head += d.toString()));
    s.on('end', () => resolve({ status: Number(head.split(' ')[1]), resumed: s.isSessionReused(), session }));
    s.on('error', reject);
  });
}

async function workloadCert(cp: ControlPlane, svc: string) {
  const join = await cp.identity.tokens.create('default', svc, 60_000);
  const kc = await createKeyAndCsr({});
  const issued = await cp.identity.sign({ csr: kc.csrPem, token: join.token });
  // What TLS checks: the certificate's own notAfter (whole seconds).
  const notAfter = new X509Certificate(issued.certChainPem).validTo;
  return { cert: issued.certChainPem, key: kc.keyPem, notAfter };
}

test(
  'a root rotation that removes the authority of a workload certificate cuts its open discovery stream, its kept-alive connection and its reconnect',
  { timeout: 60_000 },
  async () => {
    const st = await tempStore();
    const t = await startTlsCp(st.store);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const oldBundle = (await t.cp.identity.bundle()).pem;
      const old = { ca: oldBundle, ...(await workloadCert(t.cp, 'web')) };
      const s = await discoveryStream(t.url, old, { id: 'web-1', service: 'web' });
      const whoami = () =>
        new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
          const req = https.get(`${t.url}/v1/auth/whoami`, { ...old, agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, reused: req.reusedSocket }));
          });
          req.on('error', reject);
        });
      assert.equal((await whoami()).status, 200);

      await t.cp.identity.startRotation();
      await t.cp.identity.finishRotation(true);
      const closed = await within(s.closed, 5000, 'close after the certificate authority was removed');
      assert.equal(closed.code, 4401);
      assert.match(closed.reason, /client certificate .*authority .*removed/);

      const kept = await whoami();
      assert.ok(kept.reused, 'the same TLS connection');
      assert.equal(kept.status, 401);

      const newBundle = (await t.cp.identity.bundle()).pem;
      await assert.rejects(
        discoveryStream(t.url, { ...old, ca: newBundle + oldBundle }, { id: 'web-1', service: 'web' }),
        /refused: 401/,
      );
    } finally {
      agent.destroy();
      await t.cp.close();
      await st.close();
    }
  },
);

test(
  'a discovery stream opened with a workload certificate is closed when it expires',
  { timeout: 30_000 },
  async () => {
    const st = await tempStore();
    const t = await startTlsCp(st.store, { leafTtlMs: 3000 });
    try {
      const bundle = (await t.cp.identity.bundle()).pem;
      const c = await workloadCert(t.cp, 'web');
      const s = await discoveryStream(
        t.url,
        { ca: bundle, cert: c.cert, key: c.key },
        { id: 'web-1', service: 'web' },
      );
      const closed = await within(s.closed, 8000, 'close after the client certificate expired');
      assert.ok(Date.now() >= Date.parse(c.notAfter), 'not before the expiry');
      assert.equal(closed.code, 4401);
      assert.match(closed.reason, /client certificate .*expired/);
    } finally {
      await t.cp.close();
      await st.close();
    }
  },
);

test(
  'revoking the join token a workload certificate was got with cuts its discovery stream, its kept-alive connection, its reconnect and a resumed TLS session',
  { timeout: 60_000 },
  async () => {
    const st = await tempStore();
    const t = await startTlsCp(st.store);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ca = (await t.cp.identity.bundle()).pem;
      const join = await t.cp.identity.tokens.create('default', 'web', 60_000);
      const kc = await createKeyAndCsr({});
      const issued = await t.cp.identity.sign({ csr: kc.csrPem, token: join.token });
      const asWeb = { ca, cert: issued.certChainPem, key: kc.keyPem };
      const s = await discoveryStream(t.url, asWeb, { id: 'web-1', service: 'web' });
      const whoami = () =>
        new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
          const req = https.get(`${t.url}/v1/auth/whoami`, { ...asWeb, agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, reused: req.reusedSocket }));
          });
          req.on('error', reject);
        });
      assert.equal((await whoami()).status, 200);
      const first = await whoamiOnce(t.url, asWeb);
      assert.equal(first.status, 200);

      assert.ok(await t.cp.identity.tokens.revoke(join.info.id));
      const closed = await within(s.closed, 5000, 'close after the join token was revoked');
      assert.equal(closed.code, 4401);
      assert.match(closed.reason, new RegExp(`its join token ${join.info.id} was revoked`));
      const kept = await whoami();
      assert.ok(kept.reused, 'the same TLS connection');
      assert.equal(kept.status, 401);
      await assert.rejects(discoveryStream(t.url, asWeb, { id: 'web-1', service: 'web' }), /refused: 401/);
      // A resumed TLS session skips certificate verification: the request is checked still.
      const resumed = await whoamiOnce(t.url, { ...asWeb, session: first.session });
      assert.ok(resumed.resumed, 'the TLS session was resumed');
      assert.equal(resumed.status, 401);
    } finally {
      agent.destroy();
      await t.cp.close();
      await st.close();
    }
  },
);
