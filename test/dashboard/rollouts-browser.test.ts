/**
 * The dashboard's rollouts in real headless Chromium against a real control plane: the
 * controller's records (src/rollout/rollout-status.ts shapes) are written into the KV store
 * through the REST API, as the controller does, and the page must show phase, weight, step
 * and checks, then follow a change without a reload (blocking queries).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import type { HistoryEntry } from '../../src/rollout/rollout-status.ts';
import { call, startCp } from '../control/helpers.ts';
import { T0, fakeStatus } from './rollout-fixtures.ts';
import { launchChromium, shot, skipWithoutChromium, waitFor } from './browser-support.ts';

const HISTORY: HistoryEntry[] = [
  {
    revision: 1,
    changes: ['env.VERSION: "v1" → "v2"'],
    startedAt: T0 - 60_000,
    finishedAt: T0 - 30_000,
    outcome: 'Succeeded',
  },
  { revision: 2, changes: ['env.ERROR_RATE: (none) → "0.05"'], startedAt: T0, outcome: 'Progressing' },
];

async function putKv(url: string, key: string, value: unknown, headers: Record<string, string> = {}) {
  const r = await call(url, 'PUT', `/v1/kv/${key}`, JSON.stringify(value), headers);
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

const text = async (page: Page, sel: string) =>
  ((await page.locator(sel).first().textContent()) ?? '').trim();

test(
  'rollouts in Chromium: phase, weight bar, step, checks, history; live change; service page filter',
  { timeout: 60_000, skip: skipWithoutChromium },
  async () => {
    const cp = await startCp();
    let browser: Browser | undefined;
    let page: Page | undefined;
    try {
      await putKv(cp.url, 'rollouts/default/reviews/status', fakeStatus());
      await putKv(cp.url, 'rollouts/default/reviews/history', HISTORY);
      await putKv(
        cp.url,
        'rollouts/default/cart/status',
        fakeStatus({ name: 'cart', service: 'cart', weight: 50 }),
      );
      // The controller's lease lives beside the rollouts: never shown as one.
      await putKv(cp.url, 'rollouts/_controller/owner', { holder: 'x' });
      // A declared Rollout the controller has not picked up yet.
      const declared = await call(cp.url, 'PUT', '/v1/resources/Rollout/default/web', {
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'web', namespace: 'default' },
        spec: {
          service: 'web',
          template: { command: 'node', args: ['web.mjs'], labels: { version: 'v2' } },
          strategy: { canary: { steps: [{ setWeight: 10 }] } },
        },
      });
      assert.ok(declared.status === 200 || declared.status === 201, JSON.stringify(declared.body));

      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));

      // From the nav.
      await page.goto(`${cp.url}/ui/`);
      await page.locator('nav a', { hasText: 'Rollouts' }).click();
      await page.waitForURL(/\/ui\/rollouts$/);
      const card = '[data-testid=rollout][data-rollout="default/reviews"]';
      await page.locator(card).waitFor({ timeout: 15_000 });
      assert.equal(await page.locator('[data-testid=rollout]').count(), 3, 'reviews, cart and web; no lease');
      assert.equal(await text(page, `${card} [data-testid=rollout-phase]`), 'Progressing');
      assert.equal(await text(page, `${card} [data-testid=rollout-weight]`), '20%');
      assert.equal(await text(page, `${card} [data-testid=rollout-step]`), '2/5');
      assert.equal(
        await page.locator(`${card} [data-testid=rollout-bar]`).getAttribute('aria-valuenow'),
        '20',
      );
      const barWidth = await page
        .locator(`${card} [data-testid=rollout-bar] .progress-fill`)
        .evaluate((el) => (el as HTMLElement).style.width);
      assert.equal(barWidth, '20%');
      const sr = `${card} [data-check=successRate]`;
      assert.match(await text(page, sr), /successRate\s*99\.5%\s*≥ 99%\s*✓ pass/);
      assert.match(await text(page, `${card} [data-check=p99]`), /120ms\s*≤ 500ms/);
      assert.match(await text(page, `${card} [data-testid=rollout-history]`), /Succeeded/);
      assert.match(await text(page, `${card} [data-testid=rollout-history]`), /ERROR_RATE/);
      assert.equal(await text(page, '[data-rollout="default/web"] [data-testid=rollout-phase]'), 'Pending');
      await shot(page, 'rollouts-progressing');

      // The controller rolls back: the page follows without a reload.
      await putKv(
        cp.url,
        'rollouts/default/reviews/status',
        fakeStatus({
          phase: 'Failed',
          weight: 0,
          step: 3,
          failedChecks: 2,
          reason: 'analysis failed 2 times: successRate 95 < 99',
          message: 'rolled back',
          analysis: [
            ...fakeStatus().analysis,
            {
              at: T0 + 60_000,
              requests: 60,
              pass: false,
              checks: [
                { name: 'successRate', value: 95, threshold: 99, pass: false },
                { name: 'p99', value: 130, threshold: 500, pass: true },
                { name: 'requests', value: 60, threshold: 20, pass: true },
              ],
            },
          ],
        }),
      );
      await waitFor(
        'the phase to become Failed',
        async () => (await text(page!, `${card} [data-testid=rollout-phase]`)) === 'Failed',
      );
      assert.equal(await text(page, `${card} [data-testid=rollout-weight]`), '0%');
      assert.equal(await text(page, `${card} [data-testid=rollout-step]`), '4/5');
      assert.equal(await text(page, `${card} [data-testid=rollout-failed]`), '2/2');
      assert.match(await text(page, `${card} [data-testid=rollout-reason]`), /successRate 95 < 99/);
      assert.equal(await page.locator(sr).getAttribute('data-pass'), 'false');
      assert.match(await text(page, sr), /95%\s*≥ 99%\s*✗ fail/);
      assert.equal(await text(page, `${card} [data-testid=analysis-result]`), 'fail');
      await shot(page, 'rollouts-failed');

      // The service page shows that service's rollouts only.
      await page.goto(`${cp.url}/ui/services/default/reviews`);
      await page.locator(card).waitFor({ timeout: 15_000 });
      assert.equal(await page.locator('[data-testid=rollout]').count(), 1);
      await page.goto(`${cp.url}/ui/services/default/ratings`);
      await page.locator('[data-testid=rollouts-empty]').waitFor({ timeout: 15_000 });
      assert.match(await text(page, '[data-testid=rollouts-empty]'), /No rollouts for ratings/);
      assert.deepEqual(pageErrors, []);
    } catch (err) {
      if (page) await shot(page, 'rollouts-failure').catch(() => {});
      throw err;
    } finally {
      await browser?.close();
      await cp.close();
    }
  },
);
