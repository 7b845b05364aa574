import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'node:test';
import { requestAuthenticationSchema } from '../../config/resources.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { JwtAuthenticator } from './jwt-authenticator.ts';
import { testIssuer } from './test-keys.ts';

function policy(jwtRules: unknown[]) {
  return requestAuthenticationSchema.parse({
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'RequestAuthentication',
    metadata: { name: 'jwt', namespace: 'shop' },
    spec: { jwtRules },
  });
}

async function rejects(p: Promise<unknown>, reason: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof HexmeshError);
    assert.equal(err.code, 'HEXMESH_ERR_UNAUTHENTICATED');
    assert.equal(err.status, 401);
    assert.match(err.message, reason);
    return true;
  });
}

test('JwtAuthenticator (inline JWKS): valid, missing, expired, wrong issuer, wrong audience, bad signature', async () => {
  const iss = await testIssuer('https://issuer.example');
  const other = await testIssuer('https://issuer.example'); // same issuer name, different key
  const a = new JwtAuthenticator([
    policy([{ issuer: iss.issuer, audiences: ['orders'], jwks: JSON.stringify(iss.jwks) }]),
  ]);

  const headers: Record<string, string> = {
    authorization: `Bearer ${await iss.sign({ groups: ['admins'] })}`,
  };
  const auth = await a.authenticate(headers);
  assert.equal(auth?.principal, 'https://issuer.example/alice');
  assert.deepEqual(auth?.claims.groups, ['admins']);
  assert.equal(headers.authorization, undefined, 'token removed before the app');

  assert.equal(await a.authenticate({}), undefined, 'no token: unauthenticated, not rejected');
  assert.equal(await a.authenticate({ authorization: 'Basic dTpw' }), undefined);

  await rejects(
    a.authenticate({ authorization: `Bearer ${await iss.sign({}, { expiresIn: -3600 })}` }),
    /expired/,
  );
  await rejects(
    a.authenticate({ authorization: `Bearer ${await iss.sign({ iss: 'https://evil' })}` }),
    /issuer/,
  );
  await rejects(
    a.authenticate({ authorization: `Bearer ${await iss.sign({ aud: 'payments' })}` }),
    /audience/,
  );
  await rejects(a.authenticate({ authorization: `Bearer ${await other.sign()}` }), /signature/);
  await rejects(a.authenticate({ authorization: 'Bearer not.a.jwt' }), /malformed/);
  const token = await iss.sign();
  const tampered = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  await rejects(a.authenticate({ authorization: `Bearer ${tampered}` }), /signature|malformed/);
});

test('JwtAuthenticator: fromHeaders with a prefix, forwardOriginalToken keeps the header', async () => {
  const iss = await testIssuer('issuer-b');
  const a = new JwtAuthenticator([
    policy([
      {
        issuer: iss.issuer,
        jwks: JSON.stringify(iss.jwks),
        fromHeaders: [{ name: 'X-Token', prefix: 'JWT ' }],
        forwardOriginalToken: true,
      },
    ]),
  ]);
  const t = await iss.sign({ aud: 'anything' });
  const headers: Record<string, string> = { 'x-token': `JWT ${t}` };
  assert.equal((await a.authenticate(headers))?.principal, 'issuer-b/alice');
  assert.equal(headers['x-token'], `JWT ${t}`);
  // The default Authorization location is not used when fromHeaders is set.
  assert.equal(await a.authenticate({ authorization: `Bearer ${t}` }), undefined);
});

test('JwtAuthenticator: an injected wall clock decides expiry (60 s skew)', async () => {
  const iss = await testIssuer('issuer-c');
  let now = Date.now();
  const a = new JwtAuthenticator([policy([{ issuer: iss.issuer, jwks: JSON.stringify(iss.jwks) }])], {
    wallNow: () => now,
  });
  const t = await iss.sign({}, { expiresIn: '5m' });
  assert.ok(await a.authenticate({ authorization: `Bearer ${t}` }));
  now += 5 * 60_000 + 30_000; // within the skew
  assert.ok(await a.authenticate({ authorization: `Bearer ${t}` }));
  now += 60_000;
  await rejects(a.authenticate({ authorization: `Bearer ${t}` }), /expired/);
});

test('JwtAuthenticator (jwksUri): fetched once and cached; unknown kid refetches within the cooldown', async (t) => {
  const first = await testIssuer('https://idp.local', 'k1');
  const rotated = await testIssuer('https://idp.local', 'k2');
  let served = first.jwks;
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(served));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  let clock = 0;
  const a = new JwtAuthenticator([policy([{ issuer: first.issuer, jwksUri: uri }])], {
    remote: { now: () => clock, cooldownMs: 30_000, cacheMs: 300_000 },
  });
  t.after(() => a.close());

  // Concurrent first requests share one fetch.
  const tokens = await Promise.all([first.sign(), first.sign(), first.sign()]);
  const results = await Promise.all(tokens.map((tk) => a.authenticate({ authorization: `Bearer ${tk}` })));
  assert.ok(results.every((r) => r?.principal === 'https://idp.local/alice'));
  assert.equal(hits, 1);
  for (let i = 0; i < 5; i++) await a.authenticate({ authorization: `Bearer ${await first.sign()}` });
  assert.equal(hits, 1, 'cached');

  // The issuer rotates to k2: an unknown kid refetches...
  served = { keys: [...first.jwks.keys, ...rotated.jwks.keys] };
  clock += 31_000;
  assert.ok(await a.authenticate({ authorization: `Bearer ${await rotated.sign()}` }));
  assert.equal(hits, 2);
  // ...but made-up kids do not refetch again within the cooldown.
  for (let i = 0; i < 5; i++)
    await rejects(
      a.authenticate({ authorization: `Bearer ${await rotated.sign({}, { kid: `x${i}` })}` }),
      /kid/,
    );
  assert.equal(hits, 2, 'bounded refetch rate');
  // After the cache lifetime the keys are fetched again.
  clock += 300_000;
  assert.ok(await a.authenticate({ authorization: `Bearer ${await first.sign()}` }));
  assert.equal(hits, 3);
});

test('JwtAuthenticator (jwksUri): an unreachable JWKS is 401, not a crash', async () => {
  const iss = await testIssuer('https://down.local');
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const a = new JwtAuthenticator([
    policy([{ issuer: iss.issuer, jwksUri: `http://127.0.0.1:${port}/jwks` }]),
  ]);
  await rejects(a.authenticate({ authorization: `Bearer ${await iss.sign()}` }), /JWKS unavailable/);
  a.close();
});

test('JwtAuthenticator (jwksUri): an endless JWKS body is cut at the cap; cached keys keep serving', async (t) => {
  const iss = await testIssuer('https://big.local');
  const good = JSON.stringify(iss.jwks);
  let endless = false;
  let sentWhenClosed = -1;
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (!endless) return void res.end(good);
    // A hostile or broken issuer: `{"keys":[` then padding, up to 32 MiB unless the client hangs up.
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    res.write('{"keys":[');
    const pump = () => {
      while (sent < 32 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.once('close', () => (sentWhenClosed = sent));
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  let clock = 0;
  const a = new JwtAuthenticator([policy([{ issuer: iss.issuer, jwksUri: uri }])], {
    remote: { now: () => clock, cacheMs: 1000, cooldownMs: 1000 },
  });
  t.after(() => a.close());
  assert.ok(await a.authenticate({ authorization: `Bearer ${await iss.sign()}` }));

  // The keys expire from the cache and the issuer now streams without end.
  endless = true;
  clock += 5000;
  const res = await a.authenticate({ authorization: `Bearer ${await iss.sign()}` });
  assert.equal(res?.principal, 'https://big.local/alice', 'the cached keys keep serving');
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(sentWhenClosed >= 0, 'the proxy hung up on the endless body');
  assert.ok(sentWhenClosed <= 4 * 1024 * 1024, `read ${sentWhenClosed} bytes before hanging up`);
});

test('JwtAuthenticator (jwksUri): a JWKS announced larger than the cap is not read; first fetch is 401', async (t) => {
  const iss = await testIssuer('https://huge.local');
  let hung = false;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(64 * 1024 * 1024) });
    res.write('{"keys":[');
    res.once('close', () => (hung = true));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  const a = new JwtAuthenticator([policy([{ issuer: iss.issuer, jwksUri: uri }])], {
    remote: { timeoutMs: 30_000 },
  });
  t.after(() => a.close());
  const started = performance.now();
  await rejects(a.authenticate({ authorization: `Bearer ${await iss.sign()}` }), /JWKS unavailable/);
  assert.ok(performance.now() - started < 10_000, 'refused on the announced length, not after the timeout');
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(hung, 'the connection was closed');
});
