/**
 * Cross-site request forgery against the control plane's API, in real Chromium. With auth
 * off (`hexmesh control --auth off`, an embedded control plane) no credential is needed, so
 * any page the user opens could send the browser's "simple" requests (a `fetch` in no-cors
 * mode, a form POST, both without a CORS preflight) to http://127.0.0.1:7070 and apply
 * resources or create tokens. The API refuses a state-changing request, or any API request,
 * the browser marks as coming from another origin (docs/api-security.md, "Requests from
 * other web pages"); the dashboard's own same-origin calls and a link to it go on working.
 * CORS is never granted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { call, startCp } from '../control/helpers.ts';
import { CHROMIUM, launchChromium, skipWithoutChromium, waitFor } from './browser-support.ts';

const serviceYaml = (name: string) =>
  `apiVersion: hexmesh.io/v1alpha1\nkind: Service\nmetadata: {name: ${name}, namespace: default}\nspec:\n  ports: [{port: 80}]\n`;

test(
  'a page on another origin cannot apply, create tokens or write KV on a control plane with auth off',
  { timeout: 60_000, skip: skipWithoutChromium },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hexmesh-csrf-'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>hexmesh</title>');
    const cp = await startCp({ dashboard: { dir }, discovery: true });
    // The attacker's page: another origin (localhost, another port) the user happens to open.
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>cats</title><iframe name="sink"></iframe>');
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}/`;
    let browser: Browser | undefined;
    try {
      // Without a browser in the way the API takes the same requests: the page is the only attacker.
      assert.equal(
        (await call(cp.url, 'POST', '/v1/apply', serviceYaml('plain'), { 'content-type': 'text/plain' }))
          .status,
        200,
      );

      browser = await launchChromium();
      const page = await (await browser.newContext()).newPage();
      await page.goto(evilUrl);
      const outcome = await page.evaluate(
        async ({ cpUrl, yaml }) => {
          const seen: Record<string, string> = {};
          // Simple requests: sent without asking, the answer is opaque, but they run on the server.
          await fetch(`${cpUrl}/v1/apply`, { method: 'POST', mode: 'no-cors', body: yaml });
          await fetch(`${cpUrl}/v1/auth/tokens`, {
            method: 'POST',
            mode: 'no-cors',
            body: JSON.stringify({ name: 'csrf', role: 'admin' }),
          });
          // A form POST (a top-level navigation, into a frame): text/plain turns `name=value` into the body.
          const form = document.createElement('form');
          form.method = 'POST';
          form.action = `${cpUrl}/v1/apply`;
          form.enctype = 'text/plain';
          form.target = 'sink';
          const input = document.createElement('input');
          input.name = `${yaml.replace('by-fetch', 'by-form')}#`;
          input.value = '';
          form.append(input);
          document.body.append(form);
          const frame = document.querySelector('iframe')!;
          const loaded = new Promise((r) => frame.addEventListener('load', r, { once: true }));
          form.submit();
          await loaded;
          // Requests that need a preflight, and reading an answer: both need CORS, never granted.
          for (const [what, init, path] of [
            ['kv put', { method: 'PUT', body: 'x' }, '/v1/kv/csrf'],
            ['read', {}, '/v1/resources?kind=Service'],
          ] as const)
            try {
              const r = await fetch(`${cpUrl}${path}`, init);
              seen[what] = `answered ${r.status}`;
            } catch (e) {
              seen[what] = `refused: ${(e as Error).name}`;
            }
          // A WebSocket is not subject to CORS: the discovery stream would say the mesh's config.
          seen.discovery = await new Promise<string>((resolve) => {
            const ws = new WebSocket(`${cpUrl.replace('http', 'ws')}/v1/discovery`);
            const node = { id: 'evil-1', service: 'evil', address: '127.0.0.1', appPort: 9999 };
            ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', node }));
            ws.onmessage = (m) => {
              resolve(`read ${String(m.data).slice(0, 30)}`);
              ws.close();
            };
            ws.onerror = () => resolve('refused');
          });
          return seen;
        },
        { cpUrl: cp.url, yaml: serviceYaml('by-fetch') },
      );
      assert.deepEqual(outcome, {
        'kv put': 'refused: TypeError',
        read: 'refused: TypeError',
        discovery: 'refused',
      });
      const stored = {
        'service by fetch': (await call(cp.url, 'GET', '/v1/resources/Service/default/by-fetch')).status,
        'service by form': (await call(cp.url, 'GET', '/v1/resources/Service/default/by-form')).status,
        tokens: ((await call(cp.url, 'GET', '/v1/auth/tokens')).body as unknown[]).length,
        kv: (await call(cp.url, 'GET', '/v1/kv/csrf')).status,
        'instance registered': JSON.stringify(
          (await call(cp.url, 'GET', '/v1/catalog/service/evil')).body,
        ).includes('evil-1'),
      };
      assert.deepEqual(stored, {
        'service by fetch': 404,
        'service by form': 404,
        tokens: 0,
        kv: 404,
        'instance registered': false,
      });

      // A frame left loading an API URL (a blocking query here, a tap alike) would hold a slot
      // while the page stays open: refused at once.
      await page.evaluate((cpUrl) => {
        const f = document.createElement('iframe');
        f.src = `${cpUrl}/v1/kv/csrf?index=100000&wait=20s`;
        document.body.append(f);
      }, cp.url);
      await waitFor('the API frame to answer', async () => {
        const frame = page.frames().find((f) => f.url().includes('/v1/kv/csrf'));
        return frame !== undefined && (await frame.content()).includes('cross-origin request refused');
      });
      // A link from another site to the dashboard still opens it.
      await page.evaluate((cpUrl) => {
        const a = document.createElement('a');
        a.href = `${cpUrl}/ui/`;
        a.id = 'to-dashboard';
        a.textContent = 'dashboard';
        document.body.append(a);
      }, cp.url);
      const [nav] = await Promise.all([page.waitForNavigation(), page.click('#to-dashboard')]);
      assert.equal(nav?.status(), 200);

      // The dashboard's own calls (same origin) still write.
      await page.goto(`${cp.url}/ui/`);
      const own = await page.evaluate(
        async (yaml) => (await fetch('/v1/apply', { method: 'POST', body: yaml })).status,
        serviceYaml('same-origin'),
      );
      assert.equal(own, 200);
      assert.equal((await call(cp.url, 'GET', '/v1/resources/Service/default/same-origin')).status, 200);
    } finally {
      await browser?.close();
      await new Promise((r) => evil.close(r));
      await cp.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test(
  'DNS rebinding: a page whose own name now points at a loopback control plane reads and writes nothing',
  { timeout: 60_000, skip: skipWithoutChromium },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hexmesh-rebind-'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>hexmesh</title>');
    const cp = await startCp({ dashboard: { dir }, discovery: true });
    let browser: Browser | undefined;
    try {
      assert.equal((await call(cp.url, 'PUT', '/v1/kv/app/db-password', 'hunter2')).status, 200);
      // The attacker's name resolves to 127.0.0.1 now: to the browser, its page and the
      // control plane are one origin, so neither CORS nor Sec-Fetch-Site stands in the way.
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--host-resolver-rules=MAP attacker.test 127.0.0.1'],
      });
      const page = await (await browser.newContext()).newPage();
      const origin = `http://attacker.test:${new URL(cp.url).port}`;
      const load = await page.goto(`${origin}/ui/`);
      const outcome = await page.evaluate(async (yaml) => {
        const read = await fetch('/v1/kv/app/db-password');
        const apply = await fetch('/v1/apply', { method: 'POST', body: yaml });
        const ws = await new Promise<string>((resolve) => {
          const s = new WebSocket(`ws://${location.host}/v1/discovery`);
          s.onopen = () => resolve('open');
          s.onerror = () => resolve('refused');
        });
        return { read: `${read.status} ${await read.text()}`.slice(0, 120), apply: apply.status, ws };
      }, serviceYaml('rebound'));
      assert.equal(load?.status(), 403, 'the page itself is not served under that name');
      assert.equal(outcome.apply, 403);
      assert.match(outcome.read, /^403 .*does not name this control plane/);
      assert.ok(!outcome.read.includes('hunter2'));
      assert.equal(outcome.ws, 'refused');
      assert.equal((await call(cp.url, 'GET', '/v1/resources/Service/default/rebound')).status, 404);
      // The loopback names still work.
      const own = await page.goto(`http://localhost:${new URL(cp.url).port}/ui/`);
      assert.equal(own?.status(), 200);
    } finally {
      await browser?.close();
      await cp.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
);
