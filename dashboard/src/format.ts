/** Number formats, as the CLI's tables (src/cli/commands/stat.ts). */
export const fmtPercent = (v: number | null | undefined, ratio = true): string =>
  v === null || v === undefined
    ? '–'
    : `${(ratio ? v * 100 : v).toFixed(ratio && v < 1 && v > 0.999 ? 2 : 1)}%`;
export const fmtRps = (v: number): string => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
export const fmtMs = (v: number | null | undefined): string =>
  v === null || v === undefined
    ? '–'
    : v >= 1000
      ? `${(v / 1000).toFixed(2)}s`
      : `${v >= 10 ? Math.round(v) : v.toFixed(1)}ms`;
export const fmtTime = (ms: number | undefined): string =>
  ms === undefined ? '–' : new Date(ms).toLocaleTimeString([], { hour12: false });

/** How a service's figures should look: stale is never shown as healthy. */
export type Health = 'stale' | 'degraded' | 'failing' | 'warning' | 'healthy' | 'idle';

export function serviceHealth(s: { instances: number; stale: number; successRate: number | null }): Health {
  if (s.instances > 0 && s.stale >= s.instances) return 'stale';
  if (s.stale > 0) return 'degraded';
  if (s.successRate === null) return 'idle';
  if (s.successRate < 0.95) return 'failing';
  if (s.successRate < 0.99) return 'warning';
  return 'healthy';
}

export const HEALTH_LABEL: Record<Health, string> = {
  stale: 'stale',
  degraded: 'partly stale',
  failing: 'failing',
  warning: 'errors',
  healthy: 'healthy',
  idle: 'no traffic',
};
