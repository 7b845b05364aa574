/**
 * Issue 15 in real headless Chromium, on a canary (ratings v1 and v2 behind real sidecars,
 * 3:1 traffic, v2 failing half its requests):
 * - the service page splits the golden signals by version and by instance;
 * - one time-window selector drives the headline figures, the split, the routes and every
 *   chart (the page's requests all carry the chosen window);
 * - a window the server's history cannot answer (longer than it keeps) shows the server's
 *   message on each chart, not an empty plot;
 * - the topology shows the version breakdown of the edge client → ratings on demand.
 * Screenshots under test-artifacts/dashboard/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startCanaryMesh } from '../cli/canary-mesh-support.ts';
import { launchChromium, shot, skipWithoutChromium, waitFor } from './browser-support.ts';

/** Text of each match (textContent: SVG text has no innerText). */
const texts = (page: Page, sel: string) => page.locator(sel).allTextContents();

test(
  'issue 15: service page by version/instance, one time window, history errors; topology versions',
  { timeout: 180_000, skip: skipWithoutChromium },
  async () => {
    // 20 minutes of history: the 15m window is answered, 1h is refused by the server.
    const m = await startCanaryMesh({ retentionMs: 20 * 60_000 });
    let browser: Browser | undefined;
    let page: Page | undefined;
    try {
      await m.v1(30);
      await m.v2(10);
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      const statsUrls: string[] = [];
      page.on('request', (r) => {
        if (r.url().includes('/v1/stats/') && !r.url().includes('/v1/stats/targets')) statsUrls.push(r.url());
      });

      await page.goto(`${m.cp.url}/ui/services/default/ratings`);
      const split = '[data-testid=split] tbody tr';
      await waitFor(
        'the version split',
        async () =>
          JSON.stringify(await texts(page!, `${split} td:first-child`)) === '["v1","v2"]' &&
          (await page!.locator(`${split}[data-part=v1] td`).nth(2).innerText()) === '30',
        60_000,
      );
      const row = async (part: string) =>
        await page!.locator(`${split}[data-part="${part}"] td`).allInnerTexts();
      const v1 = await row('v1');
      const v2 = await row('v2');
      assert.equal(v1[4], '100.0%', `v1 ${v1}`);
      assert.equal(v2[2], '10', `v2 ${v2}`);
      assert.equal(v2[4], '50.0%', `v2 ${v2}`);
      await shot(page, 'service-by-version');

      await page.locator('[data-testid=split-select] button', { hasText: 'instance' }).click();
      await waitFor(
        'the instance split',
        async () =>
          JSON.stringify(await texts(page!, `${split} td:first-child`)) === '["ratings-v1","ratings-v2"]',
      );

      // One window for everything: pick 15m, and every stats query the page makes says 15m.
      await page.locator('[data-testid=window]').getByRole('button', { name: '15m', exact: true }).click();
      await waitFor('the figures labelled 15m', async () =>
        (await texts(page!, '.figure-label')).includes('success (15m)'),
      );
      const in15m = (u: string) => /[?&]window=15m(&|$)/.test(u);
      await waitFor('each view asked for 15m', async () => {
        const asked = statsUrls.filter(in15m);
        const kinds = ['services?', 'by=instance', 'routes?', 'metric=rps', 'metric=success', 'metric=p99'];
        return kinds.every((k) => asked.some((u) => u.includes(k)));
      });
      // From the first request for 15m on, every stats request the page made is for 15m.
      for (const u of statsUrls.slice(statsUrls.findIndex(in15m)))
        assert.ok(in15m(u), `${u} uses the page's window`);
      assert.equal(await page.locator('[data-testid=chart-error]').count(), 0);

      // A window the history cannot answer: each chart says why, instead of drawing nothing.
      await page.locator('[data-testid=window]').getByRole('button', { name: '1h', exact: true }).click();
      await waitFor(
        'three chart errors',
        async () => (await page!.locator('[data-testid=chart-error]').count()) === 3,
      );
      for (const t of await texts(page, '[data-testid=chart-error]'))
        assert.match(t, /^history unavailable: window: 1h is longer than the 1200s of history kept/);
      assert.equal(await page.locator('[data-testid=chart] .chart-plot:visible').count(), 0);
      await shot(page, 'service-history-error');
      // Back to a window it keeps: the plots return.
      await page.locator('[data-testid=window]').getByRole('button', { name: '5m', exact: true }).click();
      await waitFor(
        'charts back',
        async () => (await page!.locator('[data-testid=chart-error]').count()) === 0,
      );

      // Topology: the edge client → ratings split by version on demand (3:1 → 75 % / 25 %).
      await page.goto(`${m.cp.url}/ui/`);
      const label = '[data-testid=edge-label][data-edge="client->ratings"]';
      await m.v1(30);
      await m.v2(10);
      await waitFor('the edge', async () => (await page!.locator(label).count()) === 1, 60_000);
      assert.equal(await page.locator(`${label} .edge-version`).count(), 0, 'no versions until asked');
      await page.locator('[data-testid=topology-versions]').check();
      await waitFor(
        'the version breakdown on the edge',
        async () => (await texts(page!, `${label} .edge-version`)).length === 2,
        60_000,
      );
      // The window (1m) may have cut into the first load: shares near 3:1, not exactly. The
      // last requests (v2's) may reach the figures a scrape later: wait for them to settle.
      const V1 = /^v1 (6[5-9]|7\d|8[0-5])% · 100\.0%$/;
      const V2 = /^v2 (1[5-9]|2\d|3[0-5])% · [3-6]\d\.\d%$/;
      let lines: string[] = [];
      await waitFor(
        'the version shares near 3:1',
        async () => {
          lines = await texts(page!, `${label} .edge-version`);
          return lines.length === 2 && V1.test(lines[0]) && V2.test(lines[1]);
        },
        30_000,
      ).catch(() => {});
      assert.match(lines[0], V1);
      assert.match(lines[1], V2);
      await shot(page, 'topology-versions');
      assert.deepEqual(pageErrors, []);
    } catch (err) {
      if (page) await shot(page, 'versions-failure').catch(() => {});
      throw err;
    } finally {
      await browser?.close();
      await m.close();
    }
  },
);
