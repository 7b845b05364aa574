/**
 * Issue 15: the Tap page's columns match `hexmesh tap`'s — direction, source, destination
 * (service names), …, status, grpc — in real headless Chromium against real controlled
 * sidecars; a gRPC UNAVAILABLE carried in an HTTP 200 reads `14 UNAVAILABLE` and the row
 * is marked failed. Screenshot `tap-columns.png` under test-artifacts/dashboard/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startViewsMesh } from '../cli/mesh-views-support.ts';
import { launchChromium, shot, skipWithoutChromium, waitFor } from './browser-support.ts';

test(
  'tap page: direction, source, destination and grpc columns as hexmesh tap names them',
  { timeout: 120_000, skip: skipWithoutChromium },
  async () => {
    const m = await startViewsMesh();
    let browser: Browser | undefined;
    let page: Page | undefined;
    try {
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(`${m.cp.url}/ui/tap?service=ratings&namespace=default`);
      await waitFor('streaming', async () =>
        /streaming|connecting/.test((await page!.locator('[data-testid=tap-status]').textContent()) ?? ''),
      );
      const rows = page.locator('[data-testid=tap-row]');
      await waitFor(
        'a gRPC failure and a plain request in the list',
        async () => {
          await m.call('/cols/grpc-unavailable');
          await m.call('/cols/plain');
          return (await rows.count()) >= 2;
        },
        30_000,
      );
      const head = await page.locator('[data-testid=tap-table] thead th').allTextContents();
      assert.deepEqual(head.slice(0, 4), ['time', 'direction', 'source', 'destination']);
      const col = (name: string) => head.indexOf(name);
      assert.ok(col('grpc') > col('status'), head.join(','));
      const cells = async (path: string) =>
        page!
          .locator('[data-testid=tap-row]')
          .filter({ hasText: path })
          .first()
          .locator('td')
          .allTextContents();
      const grpc = await cells('/cols/grpc-unavailable');
      assert.equal(grpc[col('direction')], 'inbound');
      assert.equal(grpc[col('source')], 'client');
      assert.equal(grpc[col('destination')], 'ratings');
      assert.equal(grpc[col('status')], '200');
      assert.equal(grpc[col('grpc')], '14 UNAVAILABLE');
      const failedRow = page
        .locator('[data-testid=tap-row]')
        .filter({ hasText: '/cols/grpc-unavailable' })
        .first();
      assert.equal(await failedRow.getAttribute('class'), 'bad');
      const plain = await cells('/cols/plain');
      assert.equal(plain[col('grpc')], '–');
      await shot(page, 'tap-columns');
      assert.deepEqual(pageErrors, []);
    } catch (err) {
      if (page) await shot(page, 'tap-columns-failure').catch(() => {});
      throw err;
    } finally {
      await browser?.close();
      await m.close();
    }
  },
);
