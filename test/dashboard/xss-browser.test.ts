/**
 * Hostile data in the dashboard, in real Chromium against a real mesh: markup and
 * `javascript:` URLs put where anyone who can write to the mesh (or send a request through a
 * sidecar) can put them — a KV key and a rollout's status (message, reason, phase, checks,
 * history), an instance's version label, a request path the tap shows, the page's own URL —
 * are shown as text: no element they describe is created, no handler attribute exists, no
 * link leads to `javascript:`, and nothing tried to run (the page's CSP would block an
 * inline handler, so a violation report counts as a failure too).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startViewsMesh } from '../cli/mesh-views-support.ts';
import { call } from '../control/helpers.ts';
import { launchChromium, shot, skipWithoutChromium, waitFor } from './browser-support.ts';
import { fakeStatus } from './rollout-fixtures.ts';

/** Markup that would run `__xss.push(where)` if it became HTML (spaces: not in a request path). */
const payload = (where: string) => `<img src=x onerror="__xss.push('${where}')">`;
const pathPayload = (where: string) => `<img/src=x/onerror=__xss.push('${where}')>`;
/** The same without a dot: an app path with a dot in its last segment is taken for a missing asset. */
const urlPayload = (where: string) => `<img src=x onerror="__xss['push']('${where}')">`;

/** What hostile text would leave in the DOM had it become markup, and what tried to run. */
async function injected(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const w = window as unknown as { __xss: string[]; __csp: string[] };
    const found = [...w.__xss.map((x) => `ran: ${x}`), ...w.__csp.map((x) => `csp: ${x}`)];
    for (const el of document.querySelectorAll('*'))
      for (const a of el.attributes) if (a.name.startsWith('on')) found.push(`<${el.localName} ${a.name}>`);
    for (const el of document.querySelectorAll('img, iframe, object, embed, script:not([src])'))
      found.push(`<${el.localName}>`);
    for (const el of document.querySelectorAll('a[href], area[href], form[action]')) {
      const url = el.getAttribute('href') ?? el.getAttribute('action') ?? '';
      if (!url.startsWith('/')) found.push(`${el.localName} to ${url}`);
    }
    return found;
  });
}

test(
  'hostile names, labels, rollout text, tapped paths and URLs are shown as text and never run',
  { timeout: 120_000, skip: skipWithoutChromium },
  async () => {
    const m = await startViewsMesh();
    const cp = m.cp.url;
    let browser: Browser | undefined;
    try {
      // A rollout under a hostile KV key, every free-text field of its status and history hostile.
      const name = payload('kv-key');
      const key = `rollouts/default/${encodeURIComponent(name)}`;
      const status = fakeStatus({
        name,
        service: 'ratings',
        phase: payload('phase') as 'Progressing',
        message: payload('message'),
        reason: `javascript:__xss.push('reason')`,
        analysis: [
          {
            at: Date.now(),
            requests: 40,
            pass: false,
            checks: [{ name: payload('check'), value: 1, threshold: 2, pass: false }],
          },
        ],
        instances: { stable: [payload('stable')], canary: [payload('canary')] },
      });
      assert.equal((await call(cp, 'PUT', `/v1/kv/${key}/status`, JSON.stringify(status))).status, 200);
      const history = [
        {
          revision: 2,
          changes: [payload('change')],
          startedAt: Date.now(),
          outcome: 'Failed',
          reason: payload('why'),
        },
      ];
      assert.equal((await call(cp, 'PUT', `/v1/kv/${key}/history`, JSON.stringify(history))).status, 200);
      // An instance whose version label is markup (labels are free text).
      const reg = await call(cp, 'PUT', '/v1/catalog/register', {
        id: 'ratings-evil',
        service: 'ratings',
        address: '127.0.0.1',
        port: 9,
        labels: { version: payload('label'), [payload('label-name')]: 'x' },
      });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));

      browser = await launchChromium();
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.addInitScript(() => {
        const w = window as unknown as { __xss: string[]; __csp: string[] };
        w.__xss = [];
        w.__csp = [];
        document.addEventListener('securitypolicyviolation', (e) =>
          w.__csp.push(`${e.violatedDirective} ${e.sample}`),
        );
      });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      const shows = (what: string, text: string) =>
        waitFor(`${what} shown as text`, async () => (await page.locator('main').innerText()).includes(text));

      await page.goto(`${cp}/ui/rollouts`);
      for (const where of ['kv-key', 'message', 'phase', 'check', 'change'])
        await shows(where, `__xss.push('${where}')`);
      await shows('reason', `javascript:__xss.push('reason')`);
      assert.deepEqual(await injected(page), [], 'rollouts page');
      await shot(page, 'xss-rollouts');

      await page.goto(`${cp}/ui/services/default/ratings`);
      await shows('version label', `__xss.push('label')`);
      await shows('rollout on the service page', `__xss.push('message')`);
      assert.deepEqual(await injected(page), [], 'service page');

      // Requests with markup in their path, through the client's sidecar, as the tap shows them.
      await page.goto(`${cp}/ui/tap?service=ratings&namespace=default`);
      await waitFor(
        'the tapped hostile path',
        async () => {
          await m.call(`/tap/${pathPayload('path')}?q=${pathPayload('query')}`);
          return (await page.locator('[data-testid=tap-row]').count()) > 0;
        },
        30_000,
      );
      assert.deepEqual(await injected(page), [], 'tap page');
      const tapped = await page.locator('[data-testid=tap-table] tbody').innerText();
      assert.ok(tapped.includes(`/tap/${pathPayload('path')}`), tapped);

      // The page's own URL: a link someone sends.
      await page.goto(`${cp}/ui/services/default/${encodeURIComponent(urlPayload('url-service'))}`);
      await shows('service from the URL', `__xss['push']('url-service')`);
      assert.deepEqual(await injected(page), [], 'service page from a hostile URL');
      await page.goto(`${cp}/ui/${encodeURIComponent(urlPayload('url-page'))}`);
      await shows('unknown page from the URL', 'No page at /ui/%3Cimg%20src%3Dx%20onerror');
      assert.deepEqual(await injected(page), [], 'not-found page');

      await page.goto(`${cp}/ui/`);
      await page.locator('[data-testid=conn]').waitFor();
      assert.deepEqual(await injected(page), [], 'topology');
      assert.deepEqual(pageErrors, []);
    } finally {
      await browser?.close();
      await m.close();
    }
  },
);
