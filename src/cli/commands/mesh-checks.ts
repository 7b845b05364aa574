/**
 * The mesh health checks of `hexmesh check` (docs/observability.md, "hexmesh check"):
 * control plane reachable, store healthy, proxies in sync, rejected configs, routes naming
 * services that exist, clock skew.
 */
import { ControlApiError } from '../client/control-client.ts';
import type { Check, CheckContext, CheckResult } from './check.ts';

/** Warn when the control plane's clock and ours differ by more than this (certificates, leases). */
export const CLOCK_SKEW_WARN_MS = 5000;

interface Health {
  status: string;
  store: { kind?: string; ok: boolean; revision?: number; error?: string };
  leader?: boolean;
}

interface ProxyStatus {
  id: string;
  service: string;
  namespace: string;
  version: number;
  acked: number;
  nack?: { version: number; error: string };
}

/** Reachable and answering `/v1/health` at all (any status); the others need it. */
export const controlPlaneCheck: Check = {
  name: 'control-plane',
  description: 'the control plane answers /v1/health',
  async run({ client }) {
    const { body } = await client.request<Health>('GET', '/v1/health', { accept: [503] });
    const role = body.leader === undefined ? '' : body.leader ? ' (leader)' : ' (follower)';
    return [{ name: 'control-plane', status: 'ok', message: `reachable at ${client.baseUrl}${role}` }];
  },
};

export const storeCheck: Check = {
  name: 'store',
  description: 'the state store answers (embedded or etcd)',
  async run({ client }) {
    const { body } = await client.request<Health>('GET', '/v1/health', { accept: [503] });
    if (body.store?.ok)
      return [
        {
          name: 'store',
          status: 'ok',
          message: `${body.store.kind ?? 'store'} healthy at revision ${body.store.revision}`,
        },
      ];
    return [
      {
        name: 'store',
        status: 'fail',
        message: `store unavailable: ${body.store?.error ?? 'unknown error'}`,
      },
    ];
  },
};

/** Connected proxies, or undefined when this replica runs no discovery server (`/v1/proxies` is 404). */
async function connectedProxies(client: CheckContext['client']): Promise<ProxyStatus[] | undefined> {
  try {
    return (await client.request<ProxyStatus[]>('GET', '/v1/proxies')).body;
  } catch (err) {
    if (err instanceof ControlApiError && err.status === 404) return undefined;
    throw err;
  }
}

/**
 * Each connected proxy acknowledged the latest version it was sent; one that has not
 * is named, with its rejection when it refused (a nack), else as still applying.
 */
export const proxiesInSyncCheck: Check = {
  name: 'proxies-in-sync',
  description: 'every connected proxy acknowledged the config version it was sent',
  async run({ client }) {
    const body = await connectedProxies(client);
    if (!body || body.length === 0)
      return [
        {
          name: 'proxies-in-sync',
          status: 'ok',
          message: body
            ? 'no proxies connected to this control plane'
            : 'this control plane serves no proxies (discovery off)',
        },
      ];
    const behind = body.filter((p) => p.acked !== p.version);
    if (behind.length === 0)
      return [{ name: 'proxies-in-sync', status: 'ok', message: `${body.length} proxies in sync` }];
    return behind.map((p): CheckResult => ({
      name: 'proxies-in-sync',
      status: p.nack ? 'fail' : 'warn',
      message: `proxy ${p.id} (${p.namespace}/${p.service}) acked version ${p.acked}, current ${p.version}: ${
        p.nack
          ? `rejected version ${p.nack.version}: ${p.nack.error}`
          : 'not acknowledged yet (still applying?)'
      }`,
    }));
  },
};

/** Any proxy whose last answer was a rejection, even if it later caught up elsewhere. */
export const rejectedConfigsCheck: Check = {
  name: 'rejected-configs',
  description: 'no proxy rejected (nacked) its config',
  async run({ client }) {
    const nacked = ((await connectedProxies(client)) ?? []).filter((p) => p.nack);
    if (nacked.length === 0)
      return [{ name: 'rejected-configs', status: 'ok', message: 'no rejected configs' }];
    return nacked.map((p) => ({
      name: 'rejected-configs',
      status: 'fail' as const,
      message: `proxy ${p.id} (${p.namespace}/${p.service}) rejected version ${p.nack!.version}: ${p.nack!.error}`,
    }));
  },
};

/**
 * The stored config analysed as `istioctl analyze` would (`GET /v1/analyze`): a stored resource
 * that no longer validates (every proxy refuses it) fails; a route whose parent or backend names
 * a service that does not exist is a warning, one per reference.
 */
export const configReferencesCheck: Check = {
  name: 'config-references',
  description: 'every route names Services and backends that exist',
  async run({ client }) {
    const { body } = await client.request<{ warnings: string[]; errors?: string[] }>('GET', '/v1/analyze');
    const errors = body.errors ?? [];
    if (body.warnings.length === 0 && errors.length === 0)
      return [{ name: 'config-references', status: 'ok', message: 'every route names services that exist' }];
    return [
      ...errors.map((e) => ({ name: 'config-references', status: 'fail' as const, message: e })),
      ...body.warnings.map((w) => ({ name: 'config-references', status: 'warn' as const, message: w })),
    ];
  },
};

/** Clocks: compare the control plane's `Date` header with ours, halfway through the call. */
export const clockSkewCheck: Check = {
  name: 'clock-skew',
  description: `control plane clock within ${CLOCK_SKEW_WARN_MS / 1000} s of this machine's`,
  async run({ client }) {
    const t0 = Date.now();
    const r = await client.request<Health>('GET', '/v1/health', { accept: [503] });
    const t1 = Date.now();
    const date = r.headers['date'];
    const theirs = typeof date === 'string' ? Date.parse(date) : NaN;
    if (!Number.isFinite(theirs))
      return [{ name: 'clock-skew', status: 'warn', message: 'the control plane sent no Date header' }];
    // Date has 1 s resolution (truncated): compare against the middle of its second.
    const skew = theirs + 500 - (t0 + t1) / 2;
    const s = (Math.abs(skew) / 1000).toFixed(1);
    if (Math.abs(skew) > CLOCK_SKEW_WARN_MS)
      return [
        {
          name: 'clock-skew',
          status: 'warn',
          message: `control plane clock is ${s} s ${skew > 0 ? 'ahead of' : 'behind'} this machine (certificates and leases assume synchronised clocks)`,
        },
      ];
    return [{ name: 'clock-skew', status: 'ok', message: `within ${s} s` }];
  },
};

/** In the order `hexmesh check` runs them, before the other areas' checks. */
export const MESH_CHECKS: Check[] = [
  controlPlaneCheck,
  storeCheck,
  proxiesInSyncCheck,
  rejectedConfigsCheck,
  configReferencesCheck,
  clockSkewCheck,
];
