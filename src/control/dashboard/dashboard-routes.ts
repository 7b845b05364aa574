/**
 * The web dashboard on the control plane's router: `GET /` redirects to `/ui/`, and
 * `GET /ui/*` serves dashboard/dist (assets, or index.html for the app's own paths),
 * building it first when it is missing or stale (dashboard-build.ts). docs/dashboard.md.
 */
import type { ApiRequest, Router, StreamResult } from '../http/router.ts';
import { DashboardBuilder, type DashboardBuilderOptions } from './dashboard-build.ts';
import { StaticSite } from './static-site.ts';

export interface DashboardOptions extends DashboardBuilderOptions {
  /**
   * Serve this folder as it is instead of dashboard/dist (no build on demand): a packaged
   * install, or tests.
   */
  dir?: string;
}

/** Mount the dashboard on `router`. */
export function dashboardRoutes(router: Router, opts: DashboardOptions = {}): void {
  const builder = opts.dir === undefined ? new DashboardBuilder(opts) : undefined;
  const site = new StaticSite({
    dir: opts.dir ?? builder!.distDir,
    notBuiltReason: () => builder?.lastError,
  });

  router.add(
    'GET',
    '/',
    async (req): Promise<StreamResult> => {
      const q = req.raw.url?.indexOf('?') ?? -1;
      const location = `/ui/${q >= 0 ? req.raw.url!.slice(q) : ''}`;
      return {
        stream(res) {
          res.writeHead(302, { location, 'content-length': 0, 'cache-control': 'no-cache' });
          res.end();
        },
      };
    },
    'public',
  );

  router.add(
    'GET',
    '/ui/*path',
    async (req: ApiRequest): Promise<StreamResult> => {
      const rel = req.params.path ?? '';
      // Only page loads (not hashed assets) pay for the freshness check.
      if (builder && !rel.startsWith('assets/')) await builder.ensureFresh();
      return { stream: (res) => void site.serve(req.raw, res, rel) };
      // The page is public; the API calls it makes carry the viewer's token (docs/dashboard.md).
    },
    'public',
  );
}
