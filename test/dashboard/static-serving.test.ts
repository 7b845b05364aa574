/**
 * The dashboard's serving on a real control plane: redirect, content types, caching, gzip,
 * ETags, SPA fallback, path safety, the "not built" answer; and the real build (on demand,
 * fresh afterwards, within its size budget).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { startCp } from '../control/helpers.ts';
import { DashboardBuilder, findProjectRoot } from '../../src/control/dashboard/dashboard-build.ts';
import { contentType } from '../../src/control/dashboard/content-types.ts';

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const r = await request(url, { method, headers });
  const body = Buffer.from(await r.body.arrayBuffer());
  return { status: r.statusCode, headers: r.headers, body };
}

test('static serving: types, caching, gzip, ETag, SPA fallback, bad paths', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hexmesh-dash-'));
  const js = 'console.log("hexmesh dashboard");\n'.repeat(50);
  await mkdir(join(dir, 'assets'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><title>hexmesh</title>');
  await writeFile(join(dir, 'assets', 'app-ABC123.js'), js);
  await writeFile(join(dir, 'assets', 'app-ABC123.js.gz'), gzipSync(js));
  await writeFile(join(dir, 'assets', 'app-ABC123.css'), 'body{}');
  const cp = await startCp({ dashboard: { dir } });
  try {
    const root = await get(`${cp.url}/?x=1`);
    assert.equal(root.status, 302);
    assert.equal(root.headers.location, '/ui/?x=1');

    for (const path of ['/ui', '/ui/', '/ui/services/default/ratings', '/ui/tap']) {
      const r = await get(cp.url + path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers['content-type'], 'text/html; charset=utf-8', path);
      assert.equal(r.headers['cache-control'], 'no-cache', path);
      assert.match(String(r.headers['content-security-policy']), /default-src 'self'/);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.match(r.body.toString(), /<title>hexmesh<\/title>/);
    }

    const plain = await get(`${cp.url}/ui/assets/app-ABC123.js`);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.body.toString(), js);

    const gz = await get(`${cp.url}/ui/assets/app-ABC123.js`, { 'accept-encoding': 'gzip, br' });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers.vary, 'accept-encoding');
    assert.ok(gz.body.length < js.length / 5);
    assert.equal(gunzipSync(gz.body).toString(), js);

    const again = await get(`${cp.url}/ui/assets/app-ABC123.js`, {
      'accept-encoding': 'gzip',
      'if-none-match': String(gz.headers.etag),
    });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);

    const css = await get(`${cp.url}/ui/assets/app-ABC123.css`);
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');

    const head = await get(`${cp.url}/ui/assets/app-ABC123.js`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), js.length);
    assert.equal(head.body.length, 0);

    // A missing file with an extension is a 404, not the page (a stale asset must not get HTML).
    const missing = await get(`${cp.url}/ui/assets/app-OLD.js`);
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers['content-type']), /text\/plain/);
    // Escapes out of the folder are refused whatever the encoding.
    for (const path of ['/ui/%2e%2e/%2e%2e/package.json', '/ui/..%2f..%2fpackage.json', '/ui/a%00.js']) {
      const r = await get(cp.url + path);
      assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
      assert.doesNotMatch(r.body.toString(), /"name": "hexmesh"/);
    }
    // The API is untouched.
    assert.equal((await get(`${cp.url}/v1/health`)).status, 200);
    assert.equal((await get(`${cp.url}/v1/nothing`)).status, 404);
  } finally {
    await cp.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unbuilt dashboard answers 503 with how to build it; dashboard: false leaves it out', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hexmesh-dash-'));
  const a = await startCp({ dashboard: { dir: join(dir, 'none') } });
  const b = await startCp({ dashboard: false });
  try {
    const r = await get(`${a.url}/ui/`);
    assert.equal(r.status, 503);
    assert.match(r.body.toString(), /not built.*\n.*npm run build:dashboard/);
    assert.equal((await get(`${b.url}/ui/`)).status, 404);
    assert.equal((await get(`${b.url}/`)).status, 404);
  } finally {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('content types', () => {
  assert.equal(contentType('index.html'), 'text/html; charset=utf-8');
  assert.equal(contentType('a-B.JS'), 'text/javascript; charset=utf-8');
  assert.equal(contentType('a.js.map'), 'application/json; charset=utf-8');
  assert.equal(contentType('x.unknown'), 'application/octet-stream');
  assert.equal(contentType('noext'), 'application/octet-stream');
});

test(
  'the real build: on demand, fresh afterwards, served, within its size budget',
  { timeout: 60_000 },
  async () => {
    const root = findProjectRoot();
    assert.ok(root, 'project root with dashboard/src and scripts/build-dashboard.mjs');
    const builder = new DashboardBuilder({ root });
    await builder.ensureFresh();
    assert.equal(builder.lastError, undefined);
    const mod = await import('../../scripts/build-dashboard.mjs');
    assert.equal(mod.dashboardIsFresh(), true);

    const cp = await startCp();
    try {
      const page = await get(`${cp.url}/ui/`);
      assert.equal(page.status, 200);
      const html = page.body.toString();
      const scripts = [...html.matchAll(/src="(\/ui\/assets\/[^"]+\.js)"/g)].map((m) => m[1]);
      const styles = [...html.matchAll(/href="(\/ui\/assets\/[^"]+\.css)"/g)].map((m) => m[1]);
      assert.equal(scripts.length, 1, html);
      assert.equal(styles.length, 1, html);
      let gzipTotal = 0;
      for (const path of [...scripts, ...styles]) {
        const r = await get(cp.url + path, { 'accept-encoding': 'gzip' });
        assert.equal(r.status, 200, path);
        assert.equal(r.headers['content-encoding'], 'gzip');
        gzipTotal += r.body.length;
        // Offline: nothing in the bundle loads from another origin.
        assert.doesNotMatch(gunzipSync(r.body).toString(), /(src|href)=["']https?:\/\//);
      }
      // React + uPlot + d3-force + the app: about 110 KiB gzipped today.
      assert.ok(gzipTotal < 200 * 1024, `dashboard bundle is ${Math.round(gzipTotal / 1024)} KiB gzipped`);
      const index = await readFile(join(root, 'dashboard', 'dist', 'index.html'), 'utf8');
      assert.equal(index, html);
    } finally {
      await cp.close();
    }
  },
);
