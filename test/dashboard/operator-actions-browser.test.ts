/**
 * Issue 15 in real headless Chromium against a control plane enforcing API auth: the
 * Rollouts page's Promote/Abort/Undo buttons write the controller's command key with an
 * operator token, a viewer's click is refused with the API's message shown once (no retry),
 * "none configured" instead of "0/1" for a rollout without analysis, and the connection
 * badge turns red ("not authorized") on a 401. Screenshots under test-artifacts/dashboard/.
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
  'rollout buttons: operator promotes/aborts/undoes, a viewer is refused once; badge red on 401',
  { timeout: 90_000, skip: skipWithoutChromium },
  async () => {
    const cp = await startCp({ auth: { mode: 'enforce' }, identity: {} });
    let browser: Browser | undefined;
    let page: Page | undefined;
    try {
      const viewer = (await cp.cp.tokens.create({ name: 'v', role: 'viewer' })).token;
      const operator = (await cp.cp.tokens.create({ name: 'o', role: 'operator' })).token;
      const asOperator = { authorization: `Bearer ${operator}` };
      const put = await call(
        cp.url,
        'PUT',
        '/v1/kv/rollouts/default/reviews/status',
        JSON.stringify(
          fakeStatus({ phase: 'Paused', analysisConfigured: false, analysis: [], threshold: 1 }),
        ),
        asOperator,
      );
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const command = async () => {
        const r = await call(cp.url, 'GET', '/v1/kv/rollouts/default/reviews/command', undefined, asOperator);
        if (r.status !== 200) return undefined;
        const e = Array.isArray(r.body) ? (r.body as { value: string }[])[0] : (r.body as { value: string });
        return JSON.parse(e.value) as { action: string };
      };

      browser = await launchChromium();
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await ctx.newPage();
      page.on('dialog', (d) => void d.accept());
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      const card = '[data-testid=rollout][data-rollout="default/reviews"]';

      // A viewer: the buttons are there, a click is refused with the API's message, once.
      const writes: string[] = [];
      page.on('request', (r) => {
        if (r.method() === 'PUT') writes.push(r.url());
      });
      await page.goto(`${cp.url}/ui/rollouts#token=${viewer}`);
      await page.locator(`${card} [data-testid=rollout-promote]`).waitFor({ timeout: 15_000 });
      assert.equal(await text(page, `${card} [data-testid=rollout-failed]`), 'none configured');
      assert.equal(await text(page, '[data-testid=conn]'), 'connected');
      await page.locator(`${card} [data-testid=rollout-promote]`).click();
      await page.locator(`${card} [data-testid=rollout-action-note]`).waitFor({ timeout: 15_000 });
      assert.match(
        await text(page, `${card} [data-testid=rollout-action-note]`),
        /promote refused: .*permission.*operator token/i,
      );
      await new Promise((r) => setTimeout(r, 3500)); // a poll period: no retry of the write
      assert.equal(writes.length, 1, writes.join('\n'));
      assert.equal(await command(), undefined, 'nothing written');
      await shot(page, 'rollout-actions-viewer-refused');

      // An operator: promote, then abort and undo (confirmed), each written for the controller.
      await page.evaluate((t) => sessionStorage.setItem('hexmesh.token', t), operator);
      await page.reload();
      await page.locator(`${card} [data-testid=rollout-promote]`).waitFor({ timeout: 15_000 });
      for (const action of ['promote', 'abort', 'undo']) {
        await page.locator(`${card} [data-testid=rollout-${action}]`).click();
        await waitFor(
          `${action} requested`,
          async () =>
            (await text(page!, `${card} [data-testid=rollout-action-note]`)) === `${action} requested`,
        );
        await waitFor(`the ${action} command in KV`, async () => (await command())?.action === action);
      }
      await shot(page, 'rollout-actions-operator');

      // A revoked/wrong token: the badge turns red.
      await page.evaluate(() => sessionStorage.setItem('hexmesh.token', 'hxat.wrong.wrong'));
      await page.reload();
      await waitFor(
        'the badge to say not authorized',
        async () => (await text(page!, '[data-testid=conn]')) === 'not authorized',
      );
      assert.match((await page.locator('[data-testid=conn]').getAttribute('class')) ?? '', /\bdenied\b/);
      const color = await page.locator('[data-testid=conn]').evaluate((el) => getComputedStyle(el).color);
      const red = await page
        .locator('[data-testid=conn]')
        .evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--red'));
      assert.ok(red.trim().length > 0 && color !== 'rgb(0, 0, 0)', color);
      await shot(page, 'conn-badge-unauthorized');
      assert.deepEqual(pageErrors, []);
    } catch (err) {
      if (page) await shot(page, 'operator-actions-failure').catch(() => {});
      throw err;
    } finally {
      await browser?.close();
      await cp.close();
    }
  },
);
