/**
 * Authorization and request authentication on the inbound sidecar, end to end through
 * two real sidecars (client outbound → server inbound → app): every path-normalisation
 * bypass of the security issue is denied or rejected before the app, ALLOW-only policies
 * deny the rest, and JWTs are validated against keys served by a real JWKS endpoint.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import test from 'node:test';
import { testIssuer } from '../../src/proxy/authn/test-keys.ts';
import { startHttpServer, startProxy, type RunningProxy } from '../support/mesh.ts';
import { rawExchange } from '../support/raw.ts';

interface Reply {
  status: number;
  error: string | undefined;
  body: string;
}

/** One raw HTTP/1.1 request, the target sent byte for byte (no client-side normalisation). */
async function send(
  port: number,
  target: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<Reply> {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: orders', 'Connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  const r = await rawExchange(port, lines.join('\r\n') + '\r\n\r\n', { timeoutMs: 5000 });
  const [head, ...rest] = r.text.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  const error = /\r\nx-hexmesh-error: ([^\r]+)/i.exec(head)?.[1];
  return { status, error, body: rest.join('\r\n\r\n') };
}

/** The app: records every path it receives; `/admin…` (case-sensitive, as Express by default) is the secret. */
async function startApp() {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
  const app = await startHttpServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    if (req.url!.startsWith('/admin')) res.end('ADMIN SECRET');
    else res.end(`ok ${req.url}`);
  });
  return { ...app, seen };
}

function authz(name: string, spec: Record<string, unknown>) {
  return { apiVersion: 'hexmesh.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name }, spec };
}

/** Server sidecar with `resources`, and a client sidecar that knows it as `orders`. */
async function mesh(t: test.TestContext, appPort: number, resources: unknown[]) {
  const server: RunningProxy = await startProxy({
    proxy: { service: 'orders', app: { host: '127.0.0.1', port: appPort } },
    resources,
  });
  t.after(() => server.close());
  const client: RunningProxy = await startProxy({
    proxy: { service: 'web' },
    services: [{ name: 'orders', endpoints: [{ address: '127.0.0.1', port: server.inboundPort }] }],
  });
  t.after(() => client.close());
  return { server, client, outbound: client.addr.outbound.port };
}

/** Every bypass attempt of the security issue. */
const BYPASSES = [
  '/admin',
  '/admin/users',
  '/admin/../admin',
  '/public/../admin',
  '//admin',
  '/%61dmin',
  '/%61%64%6d%69%6e/x',
  '/admin%2f',
  '/admin%2Fusers',
  '/admin%5c',
  '/admin;x',
  '/public/..;/admin',
  '/./admin',
  '/admin/.',
  '/%2e%2e/admin',
  '/public/%2e%2e/admin',
  '/admin\\x',
  '/public\\..\\admin',
  '/admin%00',
  '/%C0%AFadmin',
  '/%C0%AE%C0%AE/admin',
];

test('DENY /admin*: every bypass attempt is denied or rejected, the app never sees admin', async (t) => {
  const app = await startApp();
  t.after(() => app.close());
  const { server, outbound } = await mesh(t, app.port, [
    authz('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }),
  ]);
  for (const port of [outbound, server.inboundPort]) {
    for (const path of BYPASSES) {
      const r = await send(port, path);
      assert.ok(
        (r.status === 403 && r.error === 'denied') ||
          (r.status === 400 && r.error !== undefined) ||
          r.status === 400,
        `${path} via ${port === outbound ? 'client sidecar' : 'server inbound'}: ${r.status} ${r.body}`,
      );
      assert.ok(!r.body.includes('ADMIN SECRET'), path);
      if (r.status === 403) assert.equal(r.body, 'denied by policy default/deny-admin\n');
    }
  }
  assert.equal(app.seen.length, 0, 'no bypass attempt reached the app');

  // Double encoding is decoded exactly once for matching, and the app gets that same path:
  // it decodes `%2561dmin` once to `%61dmin`, never to `admin`, so neither side sees /admin.
  for (const path of ['/%2561dmin', '/%252e%252e/admin']) {
    const r = await send(outbound, path);
    assert.equal(r.status, 200, path);
    assert.equal(r.body, `ok ${path}`);
    assert.ok(!decodeURIComponent(app.seen.at(-1)!.url).startsWith('/admin'));
  }

  // Case: paths are case-sensitive, so /ADMIN is another resource the app does not serve as admin.
  const upper = await send(outbound, '/ADMIN');
  assert.equal(upper.status, 200);
  assert.equal(upper.body, 'ok /ADMIN');
  // An ordinary request goes through with its normalised path.
  const ok = await send(outbound, '/public/./a//b?x=/../admin');
  assert.equal(ok.status, 200);
  assert.equal(ok.body, 'ok /public/a/b?x=/../admin');

  const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
  assert.match(
    metrics,
    /hexmesh_authz_decisions_total\{policy="default\/deny-admin",action="DENY",decision="denied"\} \d+/,
  );
  assert.match(
    metrics,
    /hexmesh_authz_decisions_total\{policy="none",action="none",decision="rejected"\} \d+/,
  );
});

test('ALLOW-only policy: GET /public/* passes, everything else is denied, method overrides included', async (t) => {
  const app = await startApp();
  t.after(() => app.close());
  const { outbound } = await mesh(t, app.port, [
    authz('allow-public-get', {
      action: 'ALLOW',
      rules: [{ to: [{ operation: { methods: ['GET', 'HEAD'], paths: ['/public/*'] } }] }],
    }),
  ]);
  assert.equal((await send(outbound, '/public/a')).status, 200);
  for (const [path, method, headers] of [
    ['/private', 'GET', {}],
    ['/public/a', 'POST', {}],
    ['/public/a', 'GET', { 'X-HTTP-Method-Override': 'DELETE' }],
    ['/public/a', 'GET', { 'X-HTTP-Method': 'PUT' }],
    ['/public/a', 'GET', { 'X-Method-Override': 'PATCH' }],
    ['/public/../private', 'GET', {}],
    ['/public', 'GET', {}],
  ] as [string, string, Record<string, string>][]) {
    const r = await send(outbound, path, headers, method);
    assert.equal(r.status, 403, `${method} ${path} ${JSON.stringify(headers)}`);
    assert.equal(r.error, 'denied');
    assert.match(r.body, /no ALLOW policy of orders matches \(default\/allow-public-get\)/);
  }
  assert.deepEqual(
    app.seen.map((s) => `${s.method} ${s.url}`),
    ['GET /public/a'],
  );
});

test('RequestAuthentication + claims: JWKS from a real HTTP server, cached; invalid tokens 401', async (t) => {
  const iss = await testIssuer('https://idp.test');
  const stranger = await testIssuer('https://idp.test');
  let jwksHits = 0;
  const idp = await startHttpServer((_req, res) => {
    jwksHits++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(iss.jwks));
  });
  t.after(() => idp.close());
  const app = await startApp();
  t.after(() => app.close());
  const { outbound } = await mesh(t, app.port, [
    {
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'RequestAuthentication',
      metadata: { name: 'idp' },
      spec: {
        jwtRules: [
          {
            issuer: iss.issuer,
            audiences: ['orders'],
            jwksUri: `http://127.0.0.1:${idp.port}/.well-known/jwks.json`,
          },
        ],
      },
    },
    // /reports needs a token whose `groups` claim holds `finance`; other paths are open.
    authz('deny-reports-without-finance', {
      action: 'DENY',
      rules: [
        {
          to: [{ operation: { paths: ['/reports*'] } }],
          when: [{ key: 'request.auth.claims[groups]', notValues: ['finance'] }],
        },
      ],
    }),
    authz('tokens-for-reports', {
      action: 'ALLOW',
      rules: [
        { to: [{ operation: { notPaths: ['/reports*'] } }] },
        { from: [{ source: { requestPrincipals: ['https://idp.test/*'] } }] },
      ],
    }),
  ]);
  const bearer = async (claims: Record<string, unknown> = {}, opts = {}) => ({
    Authorization: `Bearer ${await iss.sign(claims, opts)}`,
  });

  // Valid token with the claim → 200, and the token does not reach the app.
  const ok = await send(outbound, '/reports/q3', await bearer({ groups: ['finance', 'staff'] }));
  assert.equal(ok.status, 200, ok.body);
  assert.equal(app.seen.at(-1)?.headers.authorization, undefined);
  // Valid token without the claim → 403 by the claim rule.
  const noClaim = await send(outbound, '/reports/q3', await bearer({ groups: ['staff'] }));
  assert.equal(noClaim.status, 403);
  assert.equal(noClaim.body, 'denied by policy default/deny-reports-without-finance\n');
  // No token: allowed where no policy requires one, denied where one does.
  assert.equal((await send(outbound, '/status')).status, 200);
  assert.equal((await send(outbound, '/reports/q3')).status, 403);

  const seenBefore = app.seen.length;
  for (const [what, headers] of [
    ['expired', await bearer({ groups: ['finance'] }, { expiresIn: -600 })],
    ['wrong issuer', await bearer({ iss: 'https://evil.test', groups: ['finance'] })],
    ['wrong audience', await bearer({ aud: 'payments', groups: ['finance'] })],
    ['bad signature', { Authorization: `Bearer ${await stranger.sign({ groups: ['finance'] })}` }],
    ['garbage', { Authorization: 'Bearer abc.def.ghi' }],
  ] as [string, Record<string, string>][]) {
    const r = await send(outbound, '/status', headers);
    assert.equal(r.status, 401, `${what}: ${r.status} ${r.body}`);
    assert.equal(r.error, 'unauthenticated', what);
  }
  assert.equal(app.seen.length, seenBefore, 'no rejected token reached the app');
  assert.equal(jwksHits, 1, 'JWKS fetched once and cached');
});

test('gRPC-shaped request denied over HTTP/2 gets PERMISSION_DENIED in trailers-only', async (t) => {
  const app = await startApp();
  t.after(() => app.close());
  const { server } = await mesh(t, app.port, [
    authz('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin.*'] } }] }] }),
  ]);
  const h2 = await import('node:http2');
  const session = h2.connect(`http://127.0.0.1:${server.inboundPort}`);
  t.after(() => session.close());
  const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
    const s = session.request({
      ':method': 'POST',
      ':path': '/admin.Admin/Wipe',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    s.on('response', (h) => resolve(h as http.IncomingHttpHeaders));
    s.on('error', reject);
    s.end();
  });
  assert.equal(headers['grpc-status'], '7');
  assert.equal(headers['x-hexmesh-error'], 'denied');
  assert.equal(app.seen.length, 0);
});

test('WebSocket upgrades are authorized too', async (t) => {
  const app = await startApp();
  t.after(() => app.close());
  const { outbound } = await mesh(t, app.port, [
    authz('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }),
  ]);
  const r = await send(outbound, '/admin/../admin/ws', {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
  });
  assert.equal(r.status, 403, r.body);
  assert.equal(app.seen.length, 0);
});
