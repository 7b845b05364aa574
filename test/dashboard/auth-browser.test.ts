/**
 * The dashboard against a control plane that enforces API auth (src/control/auth/), in
 * real headless Chromium: a token from the URL fragment leaves the address bar and is sent
 * as `Authorization: Bearer` on every API call (the tap's NDJSON fetch included); a 403
 * names the permission missing; without a token a 401 shows the sign-in form, a wrong token
 * is refused, a right one is kept for the tab (a reload stays signed in) until sign-out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { call, startCp } from '../control/helpers.ts';
import { launchChromium, shot, skipWithoutChromium, waitFor } from './browser-support.ts';
import { fakeStatus } from './rollout-fixtures.ts';

const text = async (page: Page, sel: string) =>
  ((await page.locator(sel).first().textContent()) ?? '').trim();

test(
  'dashboard with API auth enforced: fragment token, Bearer everywhere, 403 message, sign-in form on 401',
  { timeout: 60_000, skip: skipWithoutChromium },
  async () => {
    const cp = await startCp({ auth: { mode: 'enforce' }, identity: {} });
    let browser: Browser | undefined;
    let page: Page | undefined;
    try {
      const viewer = (await cp.cp.tokens.create({ name: 'dash-viewer', role: 'viewer' })).token;
      const operator = (await cp.cp.tokens.create({ name: 'dash-operator', role: 'operator' })).token;
      const put = await call(
        cp.url,
        'PUT',
        '/v1/kv/rollouts/default/reviews/status',
        JSON.stringify(fakeStatus()),
        { authorization: `Bearer ${operator}` },
      );
      assert.equal(put.status, 200, JSON.stringify(put.body));

      browser = await launchChromium();
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await ctx.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      const apiCalls: { url: string; authorization: string | undefined }[] = [];
      page.on('request', (r) => {
        if (new URL(r.url()).pathname.startsWith('/v1/'))
          apiCalls.push({ url: r.url(), authorization: r.headers().authorization });
      });

      // 1. A viewer token in the fragment: adopted, then gone from the address bar.
      await page.goto(`${cp.url}/ui/rollouts#token=${viewer}`);
      await page
        .locator('[data-testid=signed-in]')
        .filter({ hasText: 'viewer' })
        .waitFor({ timeout: 15_000 });
      assert.equal(page.url(), `${cp.url}/ui/rollouts`);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('hexmesh.token')), viewer);
      // A viewer reads rollouts and their status (rollouts:read covers KV under rollouts/).
      await page.locator('[data-testid=rollout]').first().waitFor({ timeout: 15_000 });
      assert.equal(await page.locator('[data-testid=rollouts-problem]').count(), 0);
      assert.equal(await page.locator('[data-testid=signin]').count(), 0);

      // The tap (NDJSON fetch) carries the token too; a viewer lacks `tap`.
      await page.goto(`${cp.url}/ui/tap?service=reviews`);
      // The page shows the API's refusal as it is, naming the permission missing.
      await page
        .locator('.notice', { hasText: /Tap refused: .*lacks permission tap/ })
        .waitFor({ timeout: 15_000 });
      assert.ok(
        apiCalls.some((c) => c.url.includes('/v1/tap')),
        'the tap was requested',
      );
      assert.ok(apiCalls.length >= 3);
      for (const c of apiCalls) assert.equal(c.authorization, `Bearer ${viewer}`, c.url);
      await shot(page, 'auth-viewer-tap');

      // 2. A fresh tab without a token: 401 → the sign-in form.
      const page2 = await ctx.newPage();
      page = page2;
      page2.on('pageerror', (e) => pageErrors.push(String(e)));
      await page2.goto(`${cp.url}/ui/rollouts`);
      await page2.locator('[data-testid=signin]').waitFor({ timeout: 15_000 });
      assert.match(await text(page2, '[data-testid=signin]'), /requires authentication/);
      await shot(page2, 'auth-signin');

      // A wrong token is refused by the API and not kept.
      await page2.locator('[data-testid=signin] input[name=token]').fill('hxat.nope.nope');
      await page2.locator('[data-testid=signin] button[type=submit]').click();
      await page2.locator('[data-testid=signin-error]').waitFor();
      assert.match(await text(page2, '[data-testid=signin-error]'), /refused|invalid|unknown/i);
      assert.equal(await page2.evaluate(() => sessionStorage.getItem('hexmesh.token')), null);

      // An operator token: the form goes, the rollout's status shows at once.
      await page2.locator('[data-testid=signin] input[name=token]').fill(operator);
      await page2.locator('[data-testid=signin] button[type=submit]').click();
      const card = '[data-testid=rollout][data-rollout="default/reviews"]';
      await page2.locator(`${card} [data-testid=rollout-weight]`).waitFor({ timeout: 15_000 });
      assert.equal(await text(page2, `${card} [data-testid=rollout-weight]`), '20%');
      await waitFor(
        'the sign-in form to go',
        async () => (await page2.locator('[data-testid=signin]').count()) === 0,
      );
      assert.match(await text(page2, '[data-testid=signed-in]'), /operator/);

      // The tab keeps it across a reload; sign-out forgets it and asks again.
      await page2.reload();
      await page2.locator(`${card} [data-testid=rollout-weight]`).waitFor({ timeout: 15_000 });
      assert.equal(await page2.locator('[data-testid=signin]').count(), 0);
      await page2.locator('[data-testid=signed-in] button').click();
      await page2.locator('[data-testid=signin]').waitFor({ timeout: 15_000 });
      assert.equal(await page2.evaluate(() => sessionStorage.getItem('hexmesh.token')), null);
      assert.deepEqual(pageErrors, []);
    } catch (err) {
      if (page) await shot(page, 'auth-failure').catch(() => {});
      throw err;
    } finally {
      await browser?.close();
      await cp.close();
    }
  },
);
