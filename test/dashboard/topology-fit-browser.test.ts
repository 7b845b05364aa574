/**
 * The topology graph in real headless Chromium (issue 15): ten services (two with traffic
 * through real sidecars, eight registered idle) fit the panel with readable labels and no
 * label or node on top of another; zoom (buttons, wheel), pan (drag) and Fit; "hide idle
 * services". Screenshots under test-artifacts/dashboard/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { call } from '../control/helpers.ts';
import { startViewsMesh } from '../cli/mesh-views-support.ts';
import { launchChromium, shot, skipWithoutChromium, waitFor } from './browser-support.ts';

const IDLE = ['catalog', 'cart', 'reviews', 'payments', 'search', 'users', 'inventory', 'shipping'];

interface Box {
  what: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

/** On-screen boxes: each node (circle and its two label lines) and each edge label plate. */
function boxes(page: Page): Promise<{ nodes: Box[]; plates: Box[]; nameHeight: number; panel: Box }> {
  // A string, not a function: tsx would wrap the helpers in __name(), unknown to the page.
  return page.evaluate(`(() => {
    const box = (what, r) => ({ what, x: r.x, y: r.y, w: r.width, h: r.height });
    const union = (what, els) => {
      const rs = els.map((e) => e.getBoundingClientRect());
      const x = Math.min(...rs.map((r) => r.x));
      const y = Math.min(...rs.map((r) => r.y));
      return { what, x, y, w: Math.max(...rs.map((r) => r.right)) - x, h: Math.max(...rs.map((r) => r.bottom)) - y };
    };
    const nodes = [...document.querySelectorAll('[data-testid=node]')].map((g) =>
      union(g.getAttribute('data-service') ?? '', [...g.querySelectorAll('circle, .node-name')]),
    );
    const plates = [...document.querySelectorAll('[data-testid=edge-label] .edge-plate')].map((p) =>
      box('edge label', p.getBoundingClientRect()),
    );
    const name = document.querySelector('[data-testid=node] .node-name').getBoundingClientRect();
    return {
      nodes,
      plates,
      nameHeight: name.height,
      panel: box('panel', document.querySelector('[data-testid=topology]').getBoundingClientRect()),
    };
  })()`);
}

const overlap = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

test(
  'topology: fitted, readable, no overlaps; zoom, pan, fit; hide idle services',
  { timeout: 120_000, skip: skipWithoutChromium },
  async () => {
    const m = await startViewsMesh();
    let browser: Browser | undefined;
    let page: Page | undefined;
    try {
      for (const [i, service] of IDLE.entries()) {
        const r = await call(m.cp.url, 'PUT', '/v1/catalog/register', {
          id: `${service}-1`,
          service,
          address: '127.0.0.1',
          port: 20000 + i,
          ttl: '5m',
        });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      await m.load(20);
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(`${m.cp.url}/ui/`);
      await waitFor(
        'ten nodes and the edge',
        async () => {
          await m.load(8);
          return (
            (await page!.locator('[data-testid=node]').count()) === 10 &&
            (await page!.locator('[data-testid=edge-label]').count()) >= 1
          );
        },
        60_000,
      );
      await shot(page, 'topology-fit');

      const b = await boxes(page);
      assert.ok(b.nameHeight >= 11, `service names are ${b.nameHeight.toFixed(1)} px high`);
      // The nodes span most of the panel one way or the other (not a speck in the middle).
      const all = {
        x: Math.min(...b.nodes.map((n) => n.x)),
        y: Math.min(...b.nodes.map((n) => n.y)),
        r: Math.max(...b.nodes.map((n) => n.x + n.w)),
        bottom: Math.max(...b.nodes.map((n) => n.y + n.h)),
      };
      const spread = Math.max((all.r - all.x) / b.panel.w, (all.bottom - all.y) / b.panel.h);
      assert.ok(spread >= 0.5, `the nodes span ${(spread * 100).toFixed(0)} % of the panel`);
      for (const n of b.nodes)
        assert.ok(
          n.x >= b.panel.x &&
            n.y >= b.panel.y &&
            n.x + n.w <= b.panel.x + b.panel.w &&
            n.y + n.h <= b.panel.y + b.panel.h,
          `${n.what} inside the panel`,
        );
      const items = [...b.nodes, ...b.plates];
      for (let i = 0; i < items.length; i++)
        for (let j = i + 1; j < items.length; j++)
          assert.ok(!overlap(items[i], items[j]), `${items[i].what} overlaps ${items[j].what}`);

      // Zoom in (button): bigger; Fit: back.
      const viewBox = () => page!.locator('[data-testid=topology]').getAttribute('viewBox');
      const fitted = await viewBox();
      await page.locator('[data-testid=topology-zoom-in]').click();
      await waitFor('zoomed in', async () => (await boxes(page!)).nameHeight > b.nameHeight * 1.1);
      await page.locator('[data-testid=topology-fit]').click();
      await waitFor('fitted again', async () => (await viewBox()) === fitted);
      // Wheel over the graph zooms; a drag on the background pans.
      const panel = b.panel;
      await page.mouse.move(panel.x + 20, panel.y + 20);
      await page.mouse.wheel(0, -300);
      await waitFor('wheel zoom', async () => (await viewBox()) !== fitted);
      const zoomed = (await viewBox())!.split(' ').map(Number);
      await page.mouse.down();
      await page.mouse.move(panel.x + 220, panel.y + 20, { steps: 5 });
      await page.mouse.up();
      const panned = (await viewBox())!.split(' ').map(Number);
      assert.ok(panned[0] < zoomed[0], `dragging right moves the view left (${zoomed[0]} → ${panned[0]})`);
      assert.equal(panned[2], zoomed[2], 'a pan keeps the zoom');
      await page.locator('[data-testid=topology-fit]').click();

      // Hide idle services: only client and ratings stay.
      await page.locator('[data-testid=topology-hide-idle]').check();
      await waitFor('idle hidden', async () => (await page!.locator('[data-testid=node]').count()) === 2);
      await shot(page, 'topology-hide-idle');
      assert.deepEqual(pageErrors, []);
    } catch (err) {
      if (page) await shot(page, 'topology-fit-failure').catch(() => {});
      throw err;
    } finally {
      await browser?.close();
      await m.close();
    }
  },
);
