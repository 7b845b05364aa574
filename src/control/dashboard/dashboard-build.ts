/**
 * Build-on-demand of the dashboard for the control plane: when dashboard/dist is missing or
 * older than dashboard/src, the first page load builds it (esbuild, a few hundred ms) and
 * waits; later loads re-check at most once a second, so editing the sources and reloading
 * works without a watcher. The build itself is scripts/build-dashboard.mjs (shared with
 * `npm ci`'s prepare step and `npm run build:dashboard`).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type BuildModule = typeof import('../../../scripts/build-dashboard.mjs');

/**
 * The checkout's root: the nearest folder above this module with the dashboard sources and
 * the build script (this file runs from src/control/dashboard/ through tsx, or from dist/
 * or dist/chunks/ in the esbuild bundle).
 */
export function findProjectRoot(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'scripts', 'build-dashboard.mjs')) && existsSync(join(dir, 'dashboard', 'src')))
      return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

/**
 * The prebuilt dashboard of an installed package: `dist/release/dashboard/` beside the release
 * bundle this module is part of (scripts/pack-release.mjs); undefined when there is none.
 */
export function findPackagedDashboard(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (let i = 0; i < 3; i++) {
    if (existsSync(join(dir, 'dashboard', 'index.html'))) return join(dir, 'dashboard');
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

export interface DashboardBuilderOptions {
  /** The checkout to build in (default: found from this module's location). */
  root?: string;
  /** Least time between two freshness checks (default 1000 ms). */
  recheckMs?: number;
  now?: () => number;
}

export class DashboardBuilder {
  /** The built site's folder. */
  readonly distDir: string;
  readonly #root: string | undefined;
  readonly #recheckMs: number;
  readonly #now: () => number;
  #checkedAt = -Infinity;
  #pending: Promise<void> | undefined;
  #lastError: string | undefined;

  constructor(opts: DashboardBuilderOptions = {}) {
    this.#root = opts.root ?? findProjectRoot();
    // Without a checkout (an installed package) the prebuilt site is served as it is.
    this.distDir = this.#root
      ? join(this.#root, 'dashboard', 'dist')
      : (findPackagedDashboard() ?? join(process.cwd(), 'dashboard', 'dist'));
    this.#recheckMs = opts.recheckMs ?? 1000;
    this.#now = opts.now ?? Date.now;
  }

  /** Why the last build failed (undefined after a good one). */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /**
   * Make dist/ current: at most one check per `recheckMs`, one build at a time. Never
   * throws: a failed build leaves the last good dist/ served and `lastError` set.
   */
  ensureFresh(): Promise<void> {
    if (this.#pending) return this.#pending;
    if (!this.#root || this.#now() - this.#checkedAt < this.#recheckMs) return Promise.resolve();
    this.#checkedAt = this.#now();
    const root = this.#root;
    this.#pending = (async () => {
      try {
        const mod = (await import(
          pathToFileURL(join(root, 'scripts', 'build-dashboard.mjs')).href
        )) as BuildModule;
        if (mod.dashboardIsFresh()) return;
        await mod.buildDashboard();
        this.#lastError = undefined;
      } catch (err) {
        this.#lastError = String((err as Error)?.message ?? err).split('\n')[0];
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }
}
