/**
 * A web page against a sidecar's admin listener, in real Chromium. The page cannot read an
 * answer (no CORS), but a no-cors `GET /tap` is sent without asking and its stream stays
 * open: each took one of the tap's few viewer slots, so a page left open kept `hexmesh tap`
 * (and the dashboard's tap, through the control plane) out with 503. Requests a browser marks
 * as sent by another site's page are refused before any endpoint runs (docs/admin.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { AdminServer } from '../../src/proxy/admin/admin-server.ts';
import { ProxyMetrics } from '../../src/telemetry/metrics.ts';
import { TapHub } from '../../src/telemetry/tap/tap-hub.ts';
import { launchChromium, skipWithoutChromium, waitFor } from '../dashboard/browser-support.ts';

test(
  "another site's page cannot take the admin tap's viewer slots",
  { timeout: 60_000, skip: skipWithoutChromium },
  async () => {
    const hub = new TapHub({ maxViewers: 4 });
    const admin = new AdminServer({
      address: '127.0.0.1',
      port: 0,
      metrics: new ProxyMetrics({ service: 'web', namespace: 'default', processMetrics: false }),
      isReady: () => true,
      configDump: () => ({}),
      onShutdown: () => {},
      tap: hub,
    });
    const { port } = await admin.listen();
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>cats</title>');
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const page = await browser.newPage();
      await page.goto(`http://localhost:${(evil.address() as AddressInfo).port}/`);
      // Four streams left open (Chromium allows six connections per host): frames keep
      // loading a stream as long as the page is open.
      await page.evaluate((adminPort) => {
        for (let i = 0; i < 4; i++) {
          const f = document.createElement('iframe');
          f.src = `http://127.0.0.1:${adminPort}/tap?n=${i}`;
          document.body.append(f);
        }
      }, port);
      await waitFor('the frames to load', async () => page.frames().length === 5);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(hub.viewers, 0, 'no viewer slot taken by the page');
      // The operator's own tap gets in.
      const ac = new AbortController();
      const mine = await fetch(`http://127.0.0.1:${port}/tap`, { signal: ac.signal });
      assert.equal(mine.status, 200);
      ac.abort();
      // The user typing the admin URL is not another site (Sec-Fetch-Site: none).
      const typed = await page.goto(`http://127.0.0.1:${port}/ready`);
      assert.equal(typed?.status(), 200);
    } finally {
      await browser?.close();
      await new Promise((r) => evil.close(r));
      await admin.close();
    }
  },
);
