/**
 * The dashboard's static site against hostile paths and pages: encoded backslashes, dots
 * and NULs never leave the folder, a folder is never listed, and the page can be neither
 * sniffed nor framed (CSP `frame-ancestors 'none'`, `X-Frame-Options: DENY`, no inline
 * script) — in Chromium too: another origin's frame of the page stays empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import type { Browser } from 'playwright-core';
import { startCp } from '../control/helpers.ts';
import { launchChromium, skipWithoutChromium } from './browser-support.ts';

const INDEX = '<!doctype html><title>hexmesh</title><p id=app>dashboard</p>';

async function site() {
  const parent = await mkdtemp(join(tmpdir(), 'hexmesh-dash-'));
  const dir = join(parent, 'dist');
  await mkdir(join(dir, 'assets'), { recursive: true });
  await writeFile(join(dir, 'index.html'), INDEX);
  await writeFile(join(dir, 'assets', 'app-1.js'), 'export {};\n');
  // A secret next to the served folder: nothing may reach it.
  await writeFile(join(parent, 'secret.txt'), 'TOP-SECRET');
  const cp = await startCp({ dashboard: { dir } });
  return {
    cp,
    close: async () => {
      await cp.close();
      await rm(parent, { recursive: true, force: true });
    },
  };
}

async function get(url: string) {
  const r = await request(url);
  return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
}

test('hostile paths stay inside the folder; folders are not listed', async () => {
  const s = await site();
  try {
    for (const path of [
      '/ui/..%5csecret.txt',
      '/ui/%5c..%5csecret.txt',
      '/ui/assets%5c..%5c..%5csecret.txt',
      '/ui/%2e%2e%5csecret.txt',
      '/ui/..%2fsecret.txt',
      '/ui/%2e%2e/secret.txt',
      '/ui/assets/..%2f..%2fsecret.txt',
      '/ui/secret.txt%00.js',
      '/ui/%00',
    ]) {
      const r = await get(s.cp.url + path);
      assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
      assert.ok(!r.text.includes('TOP-SECRET'), path);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
      // (`%2e%2e` is `..` to the URL parser: that one reaches /secret.txt, an API 404.)
      assert.match(String(r.headers['content-type']), /^(text\/plain|application\/json)/, path);
    }
    // A folder is an app path: the page, never a listing.
    for (const path of ['/ui/assets', '/ui/assets/', '/ui/assets/%2e']) {
      const r = await get(s.cp.url + path);
      assert.equal(r.status, 200, path);
      assert.equal(r.text, INDEX, path);
    }
  } finally {
    await s.close();
  }
});

test('the page cannot be framed or sniffed and runs no inline script', async () => {
  const s = await site();
  try {
    for (const path of ['/ui/', '/ui/services/default/web', '/ui/assets/app-1.js', '/ui/nope.js']) {
      const r = await get(s.cp.url + path);
      assert.equal(r.headers['x-frame-options'], 'DENY', path);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
    }
    const page = await get(`${s.cp.url}/ui/`);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /object-src|default-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-eval|script-src[^;]*unsafe-inline/);
  } finally {
    await s.close();
  }
});

test(
  "another origin's frame of the dashboard stays empty",
  { timeout: 60_000, skip: skipWithoutChromium },
  async () => {
    const s = await site();
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><iframe src="${s.cp.url}/ui/"></iframe>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const page = await browser.newPage();
      const refused = page.waitForEvent('console', (m) => /frame|ancestor/i.test(m.text()));
      await page.goto(`http://localhost:${(evil.address() as AddressInfo).port}/`);
      await refused;
      const frame = page.frames().find((f) => f !== page.mainFrame())!;
      assert.ok(frame, 'the frame exists');
      assert.ok(!(await frame.content()).includes('dashboard'), 'the dashboard did not load in it');
    } finally {
      await browser?.close();
      await new Promise((r) => evil.close(r));
      await s.close();
    }
  },
);
