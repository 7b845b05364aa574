/**
 * Issue 15 in real headless Chromium: the service page's "Recent errors" come from the
 * control plane's history, not from the tap since the page opened. ratings v2 (behind a
 * real sidecar, scraped by a real control plane) fails every other request with a 503
 * BEFORE the page opens; the page shows those failures, and still shows them after a
 * reload. Screenshot under test-artifacts/dashboard/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { call, eventually } from '../control/helpers.ts';
import { startCanaryMesh } from '../cli/canary-mesh-support.ts';
import { launchChromium, shot, skipWithoutChromium, waitFor } from './browser-support.ts';

test(
  'issue 15: the service page shows recent errors from the server history, across a reload',
  { timeout: 180_000, skip: skipWithoutChromium },
  async () => {
    const m = await startCanaryMesh();
    let browser: Browser | undefined;
    let page: Page | undefined;
    try {
      await m.v1(10);
      await m.v2(10); // 5 × 503, all before the page exists
      await eventually(
        'the failures in the history',
        async () =>
          (await call(m.cp.url, 'GET', '/v1/stats/errors?service=ratings&window=15m')).body.total === 5,
        30_000,
      );
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(`${m.cp.url}/ui/services/default/ratings`);
      await page.locator('[data-testid=window]').getByRole('button', { name: '15m', exact: true }).click();

      const row = '[data-testid=error-history] tbody tr[data-side=server][data-version=v2]';
      const cells = async () =>
        (await page!.locator(row).count()) === 1 ? page!.locator(`${row} td`).allInnerTexts() : [];
      const seen = async () => {
        const c = await cells();
        return c[1] === 'server' && c[2] === 'client' && c[3] === '503' && c[6] === 'v2' && c[7] === '5';
      };
      await waitFor('the history row of v2', seen, 60_000);
      const c = await cells();
      assert.match(c[0], /^\d{1,2}:\d{2}:\d{2}$/, `last seen ${c[0]}`);
      assert.equal(c[8], 'ratings-v2');
      // v1 never failed: no row of its own.
      assert.equal(await page.locator('[data-testid=error-history] tbody tr[data-version=v1]').count(), 0);

      // A reload keeps them: they are the server's, not the page's.
      await page.reload();
      await page.locator('[data-testid=window]').getByRole('button', { name: '15m', exact: true }).click();
      await waitFor('the history row after the reload', seen, 60_000);
      await page.locator('[data-testid=error-history]').scrollIntoViewIfNeeded();
      await shot(page, 'service-error-history');
      assert.deepEqual(pageErrors, []);
    } catch (err) {
      if (page) await shot(page, 'error-history-failure').catch(() => {});
      throw err;
    } finally {
      await browser?.close();
      await m.close();
    }
  },
);
