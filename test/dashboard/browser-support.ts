/**
 * Chromium for the dashboard's browser tests (docs/dashboard.md, "Tests"): Debian's
 * `chromium` driven by playwright-core with the flags that keep it off the network.
 * Without it the tests are skipped locally and fail in CI.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { findProjectRoot } from '../../src/control/dashboard/dashboard-build.ts';

export const CHROMIUM = process.env.HEXMESH_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true')
  throw new Error(
    `dashboard browser tests need Chromium at ${CHROMIUM} (Debian package "chromium"; .ci/run installs it)`,
  );

/** `skip` option of a browser test. */
export const skipWithoutChromium: string | false = haveChromium
  ? false
  : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

const ARTIFACTS = join(findProjectRoot() ?? process.cwd(), 'test-artifacts', 'dashboard');

const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Poll `check` every 100 ms until it holds (`ms` at most, default 15 s). */
export async function waitFor(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
