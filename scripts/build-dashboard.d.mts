/** Types of scripts/build-dashboard.mjs, for the control plane's build-on-demand. */
export declare const ROOT: string;
export declare const DASHBOARD: string;
export declare const DIST: string;
export declare function dashboardIsFresh(): boolean;
export declare function buildDashboard(): Promise<{
  files: { path: string; bytes: number; gzipBytes?: number }[];
}>;
