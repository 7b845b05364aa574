/**
 * The Tap page in real headless Chromium against real sidecars with API auth enforced
 * (issue 15): a token without the `tap` permission is refused once — the message shown, the
 * stream not retried — and with an operator's token the list fills, Clear empties it while the
 * stream goes on, Pause stops it. Screenshots under test-artifacts/dashboard/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startViewsMesh } from '../cli/mesh-views-support.ts';
import { launchChromium, shot, skipWithoutChromium, waitFor } from './browser-support.ts';

test(
  'tap page: a refusal is shown once and not retried; Clear empties the list, the stream goes on',
  { timeout: 120_000, skip: skipWithoutChromium },
  async () => {
    const m = await startViewsMesh({ auth: true });
    let browser: Browser | undefined;
    let page: Page | undefined;
    try {
      const viewer = (await m.cp.cp.tokens.create({ name: 'v', role: 'viewer' })).token;
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      let tapRequests = 0;
      page.on('request', (r) => {
        if (new URL(r.url()).pathname === '/v1/tap') tapRequests++;
      });

      await page.goto(`${m.cp.url}/ui/tap?service=ratings&namespace=default#token=${viewer}`);
      const refused = page.locator('[data-testid=tap-refused]');
      await refused.waitFor({ timeout: 15_000 });
      assert.match((await refused.textContent()) ?? '', /Tap refused: .*lacks permission tap.*Not retried/);
      // The old page retried every 15 s: wait past that, still one request.
      await new Promise((r) => setTimeout(r, 16_500));
      assert.equal(tapRequests, 1);
      await shot(page, 'tap-refused-once');

      await page.evaluate((t) => sessionStorage.setItem('hexmesh.token', t), m.operatorToken!);
      await page.reload();
      await waitFor('streaming', async () =>
        /streaming|connecting/.test((await page!.locator('[data-testid=tap-status]').textContent()) ?? ''),
      );
      const rows = page.locator('[data-testid=tap-row]');
      const loadUntil = async (what: string, ok: () => Promise<boolean>) =>
        waitFor(
          what,
          async () => {
            await m.load(4, (i) => `/tap-${i}`);
            return ok();
          },
          30_000,
        );
      await loadUntil('tap rows', async () => (await rows.count()) >= 3);
      await new Promise((r) => setTimeout(r, 1500)); // trailing events of the last load land first
      await page.locator('[data-testid=tap-clear]').click();
      assert.equal(await rows.count(), 0);
      assert.match(
        (await page.locator('[data-testid=tap-status]').textContent()) ?? '',
        /streaming · 0 requests|streaming/,
      );
      await loadUntil('rows again after clear', async () => (await rows.count()) >= 1);
      await shot(page, 'tap-after-clear');

      await page.locator('[data-testid=tap-pause]').click();
      await waitFor(
        'paused',
        async () => ((await page!.locator('[data-testid=tap-status]').textContent()) ?? '') === 'paused',
      );
      assert.equal(await page.locator('[data-testid=tap-refused]').count(), 0);
      assert.deepEqual(pageErrors, []);
    } catch (err) {
      if (page) await shot(page, 'tap-controls-failure').catch(() => {});
      throw err;
    } finally {
      await browser?.close();
      await m.close();
    }
  },
);
