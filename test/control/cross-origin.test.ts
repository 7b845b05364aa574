/**
 * The API's rule for requests from other web pages (src/control/http/cross-origin.ts,
 * docs/api-security.md), header by header: what a browser says (`Sec-Fetch-Site`, else
 * `Origin` against `Host`) decides state changes and upgrades; clients that are not browsers
 * send neither and pass; API reads from another site's page are refused too (a frame could
 * hold a tap or a blocking query), dashboard page loads are not; no CORS ever. The browser itself:
 * test/dashboard/cross-origin-browser.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import WebSocket from 'ws';
import { startCp, type TestCp } from './helpers.ts';
import { isLoopbackAddress } from '../../src/control/http/cross-origin.ts';

let t: TestCp;
let host: string;
before(async () => {
  t = await startCp({ discovery: true });
  host = new URL(t.url).host;
});
after(() => t.close());

const yaml = (name: string) =>
  `apiVersion: hexmesh.io/v1alpha1\nkind: Service\nmetadata: {name: ${name}}\nspec:\n  ports: [{port: 80}]\n`;

async function apply(name: string, headers: Record<string, string>) {
  const r = await request(`${t.url}/v1/apply`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', ...headers },
    body: yaml(name),
  });
  const body = (await r.body.json()) as { error?: { code: string; message: string } };
  return { status: r.statusCode, body };
}

test('state changes: refused when the browser says another origin sent them, else taken', async () => {
  const cases: [string, Record<string, string>, number][] = [
    ['no-browser', {}, 200],
    ['fetch-same-origin', { 'sec-fetch-site': 'same-origin', origin: t.url }, 200],
    ['typed-by-user', { 'sec-fetch-site': 'none' }, 200],
    ['origin-matches-host', { origin: `http://${host}` }, 200],
    ['fetch-cross-site', { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }, 403],
    // Another port of the same host is the same site, not the same origin.
    ['fetch-same-site', { 'sec-fetch-site': 'same-site', origin: 'http://127.0.0.1:1' }, 403],
    ['origin-other', { origin: 'https://evil.example' }, 403],
    ['origin-other-port', { origin: 'http://127.0.0.1:1' }, 403],
    ['origin-null', { origin: 'null' }, 403],
  ];
  for (const [name, headers, status] of cases) {
    const r = await apply(name, headers);
    assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
    const stored = await request(`${t.url}/v1/resources/Service/default/${name}`);
    await stored.body.dump();
    assert.equal(stored.statusCode, status === 200 ? 200 : 404, `${name}: stored?`);
    if (status === 403) {
      assert.equal(r.body.error?.code, 'HEXMESH_ERR_DENIED');
      assert.match(
        r.body.error!.message,
        /^cross-origin request refused: POST \/v1\/apply was sent by a page at /,
      );
    }
  }
});

test('API reads from another site are refused, dashboard page loads are not; never any CORS header', async () => {
  const read = async (path: string, headers: Record<string, string>) => {
    const r = await request(`${t.url}${path}`, { headers });
    const text = await r.body.text();
    assert.equal(r.headers['access-control-allow-origin'], undefined, path);
    return `${r.statusCode} ${text.includes('cross-origin request refused') ? 'refused' : ''}`.trim();
  };
  const crossSite = { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' };
  assert.equal(await read('/v1/resources?kind=Service', crossSite), '403 refused');
  assert.equal(
    await read('/v1/tap?service=web', { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'iframe' }),
    '403 refused',
  );
  assert.equal(await read('/v1/resources?kind=Service', { 'sec-fetch-site': 'same-origin' }), '200');
  assert.equal(await read('/v1/resources?kind=Service', {}), '200');
  // A link to the dashboard from another site (the page itself is public; this one has none mounted).
  assert.equal(await read('/', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' }), '302');
  const preflight = await request(`${t.url}/v1/kv/x`, {
    method: 'OPTIONS',
    headers: {
      origin: 'https://evil.example',
      'access-control-request-method': 'PUT',
      'access-control-request-headers': 'authorization',
    },
  });
  await preflight.body.dump();
  assert.ok(preflight.statusCode >= 400, `preflight answered ${preflight.statusCode}`);
  for (const h of [
    'access-control-allow-origin',
    'access-control-allow-methods',
    'access-control-allow-headers',
  ])
    assert.equal(preflight.headers[h], undefined, h);
});

test('the discovery WebSocket refuses a handshake from another origin, takes one without Origin', async () => {
  const open = (headers: Record<string, string>) =>
    new Promise<string>((resolve) => {
      const ws = new WebSocket(`${t.url.replace('http', 'ws')}/v1/discovery`, { headers });
      ws.on('open', () => {
        ws.close();
        resolve('open');
      });
      ws.on('unexpected-response', (_req, res) => {
        resolve(`refused ${res.statusCode}`);
        res.resume();
        ws.terminate();
      });
      ws.on('error', () => {});
    });
  assert.equal(await open({ origin: 'https://evil.example' }), 'refused 403');
  assert.equal(await open({ origin: 'http://127.0.0.1:1', 'sec-fetch-site': 'same-site' }), 'refused 403');
  assert.equal(await open({}), 'open');
  assert.equal(await open({ origin: t.url }), 'open');
});

test('on loopback, a Host that is a DNS name other than localhost is refused (DNS rebinding), reads included', async () => {
  const port = new URL(t.url).port;
  const get = async (hostHeader: string, path = '/v1/health') => {
    const r = await request(`${t.url}${path}`, { headers: { host: hostHeader } });
    return { status: r.statusCode, text: await r.body.text() };
  };
  for (const h of [
    `127.0.0.1:${port}`,
    `localhost:${port}`,
    'localhost',
    `[::1]:${port}`,
    '127.0.0.2:9000',
    '192.0.2.2',
  ])
    assert.equal((await get(h)).status, 200, h);
  for (const h of [
    `attacker.example:${port}`,
    'attacker.example',
    `localhost.attacker.example:${port}`,
    `127.0.0.1.nip.io:${port}`,
  ]) {
    const r = await get(h, '/v1/resources?kind=Service');
    assert.equal(r.status, 403, h);
    assert.match(r.text, /HEXMESH_ERR_DENIED.*does not name this control plane/, h);
  }
  const ws = await new Promise<string>((resolve) => {
    const s = new WebSocket(`${t.url.replace('http', 'ws')}/v1/discovery`, {
      headers: { host: `attacker.example:${port}` },
    });
    s.on('open', () => {
      s.close();
      resolve('open');
    });
    s.on('unexpected-response', (_req, res) => {
      resolve(`refused ${res.statusCode}`);
      res.resume();
      s.terminate();
    });
    s.on('error', () => {});
  });
  assert.equal(ws, 'refused 403');
  // A reverse proxy in front that passes its own Host is named with allowedHosts (--allowed-hosts).
  const proxied = await startCp({ allowedHosts: ['CP.example.com'] });
  try {
    const at = async (h: string) => {
      const r = await request(`${proxied.url}/v1/health`, { headers: { host: h } });
      await r.body.dump();
      return r.statusCode;
    };
    assert.equal(await at('cp.example.com'), 200);
    assert.equal(await at('cp.example.com:443'), 200);
    assert.equal(await at('attacker.example'), 403);
  } finally {
    await proxied.close();
  }
  // Only a loopback listener does this: one on a network address is reached by name.
  assert.deepEqual(
    ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '0.0.0.0', '::', '10.0.0.2'].map(isLoopbackAddress),
    [true, true, true, true, false, false, false],
  );
});
