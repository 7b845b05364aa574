/**
 * Issue 9, admin listener: a web page in the user's browser reaches 127.0.0.1 too. A
 * cross-origin "simple" POST /shutdown (text/plain, no custom header) must not stop the
 * proxy, and a DNS-rebound `Host: attacker.example` must not read /config.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { rawExchange, parseResponse } from '../support/raw.ts';
import { startProxy, type RunningProxy } from '../support/mesh.ts';

const proxies: RunningProxy[] = [];
after(async () => {
  for (const p of proxies) await p.close();
});

test('issue 9: a cross-origin text/plain POST /shutdown is refused and the proxy stays up', async () => {
  const p = await startProxy({ proxy: { service: 'web' } });
  proxies.push(p);
  const port = p.addr.admin.port;
  const r = await rawExchange(
    port,
    `POST /shutdown HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://attacker.example\r\n` +
      'Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi',
  );
  const res = parseResponse(r.text);
  assert.equal(res?.status, 403, r.text);
  assert.match(res!.body, /x-hexmesh-admin/);
  // Still serving: ready, and not draining.
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(p.proxy.ready, true);
  const ready = await fetch(`${p.adminUrl}/ready`);
  assert.equal(ready.status, 200);
  await ready.text();
});

test('issue 9: Host: attacker.example on /config is refused with 421', async () => {
  const p = await startProxy({ proxy: { service: 'web' } });
  proxies.push(p);
  const port = p.addr.admin.port;
  const r = await rawExchange(
    port,
    `GET /config HTTP/1.1\r\nHost: attacker.example:${port}\r\nConnection: close\r\n\r\n`,
  );
  const res = parseResponse(r.text);
  assert.equal(res?.status, 421, r.text);
  assert.doesNotMatch(r.text, /"service"/);
  const ok = await fetch(`${p.adminUrl}/config`);
  assert.equal(ok.status, 200);
  assert.match(await ok.text(), /"service": "web"/);
});
