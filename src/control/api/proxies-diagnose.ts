/**
 * `GET /v1/proxies/{instance-id|service}/diagnose[?namespace=]`: what one proxy (or every
 * proxy of a service) is actually running, like `istioctl proxy-config`: its effective
 * config (the admin `/config`, secrets redacted), its destinations with each endpoint's
 * health, ejection, load and circuit state (admin `/endpoints`), and what it last
 * acknowledged or rejected on its discovery stream (connected to this replica).
 */
import { ApiError } from '../http/error-response.ts';
import type { Router } from '../http/router.ts';
import type { ProxyStatus } from '../discovery/proxy-session.ts';
import type { ApiContext } from './context.ts';
import { findProxies, type ProxyTarget } from './proxy-targets.ts';
import { redact } from '../../util/redact.ts';

export { redact };

export interface DiagnoseRouteOptions {
  /** Discovery status of the proxies connected to this replica (`/v1/proxies`). */
  proxyStatuses?: () => readonly ProxyStatus[];
  /** Time limit per admin call (default 5 s). */
  timeoutMs?: number;
}

export interface ProxyDiagnosis extends ProxyTarget {
  /** Discovery state, null when the proxy is not connected to this replica (or static). */
  sync: { version: number; acked: number; inSync: boolean; nack?: { version: number; error: string } } | null;
  config: unknown;
  endpoints: unknown;
  /** Admin calls that failed, by endpoint. */
  errors: string[];
}

async function adminJson(addr: string, path: string, timeoutMs: number): Promise<unknown> {
  const res = await fetch(`http://${addr}${path}`, {
    signal: AbortSignal.timeout(timeoutMs),
    headers: { accept: 'application/json' },
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`${path} answered ${res.status}`);
  }
  return res.json();
}

export function proxiesDiagnoseRoutes(
  router: Router,
  ctx: ApiContext,
  opts: DiagnoseRouteOptions = {},
): void {
  const timeoutMs = opts.timeoutMs ?? 5000;
  router.add(
    'GET',
    '/v1/proxies/:target/diagnose',
    async (req) => {
      const target = req.params.target;
      const namespace = req.query.get('namespace') || undefined;
      let targets = await findProxies(ctx, { instance: target, namespace });
      if (targets.length === 0) targets = await findProxies(ctx, { service: target, namespace });
      if (targets.length === 0)
        throw new ApiError(
          'HEXMESH_ERR_NOT_FOUND',
          `no proxy with instance id or service ${JSON.stringify(target)}${namespace ? ` in namespace ${namespace}` : ''} (a sidecar must be registered with an admin address)`,
        );
      const statuses = opts.proxyStatuses?.() ?? [];
      const proxies = await Promise.all(
        targets.map(async (t): Promise<ProxyDiagnosis> => {
          const errors: string[] = [];
          const [config, endpoints] = await Promise.all(
            ['/config', '/endpoints'].map((p) =>
              adminJson(t.adminAddress, p, timeoutMs).catch((e: Error) => {
                errors.push(`${t.adminAddress}${p}: ${e.message}`);
                return null;
              }),
            ),
          );
          const s = statuses.find(
            (x) => x.id === t.id && x.service === t.service && x.namespace === t.namespace,
          );
          return {
            ...t,
            sync: s
              ? {
                  version: s.version,
                  acked: s.acked,
                  inSync: s.acked === s.version,
                  ...(s.nack && { nack: s.nack }),
                }
              : null,
            config: redact(config),
            endpoints,
            errors,
          };
        }),
      );
      return { json: { target, proxies } };
    },
    'resources:read',
  );
}
