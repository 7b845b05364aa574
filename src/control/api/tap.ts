/**
 * `GET /v1/tap?service=&namespace=&instance=&path=&method=&status=&direction=&rate=&limit=`:
 * live tap of a service's proxies, fanned in to one NDJSON stream. Each proxy's admin
 * `/tap` is opened with the same filter; its `request` events are forwarded with a `proxy`
 * field naming the instance. Lines: `start` (the proxies tapped), `request`, `dropped`
 * (per proxy, and the fan-in's own when this client reads too slowly), `proxy-gone` (a proxy
 * stream ended or failed), `end` (every proxy is gone or `limit` reached).
 *
 * Proxies that join after the stream started are not added (reconnect to see them).
 */
import http from 'node:http';
import type { ServerResponse } from 'node:http';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { parseTapFilter, filterQuery } from '../../telemetry/tap/tap-filter.ts';
import { ApiError, badRequest } from '../http/error-response.ts';
import type { ApiRequest, Router } from '../http/router.ts';
import type { ApiContext } from './context.ts';
import { findProxies, type ProxyTarget } from './proxy-targets.ts';

/**
 * Authorization hook: decides whether the caller of `req` may tap `targets`. Tap shows
 * who calls whom and which paths; the security issue restricts it to roles that may see
 * traffic. Until then every caller is allowed. Throw an ApiError (403) to refuse.
 */
export type TapAuthorizer = (req: ApiRequest, targets: readonly ProxyTarget[]) => Promise<void>;

/** The default: no roles yet, everyone may tap. Replace through `tapRoutes(…, {authorize})`. */
export const allowAllTap: TapAuthorizer = () => Promise.resolve();

/** Bytes this client may fall behind before forwarded events are dropped (and counted). */
const MAX_BUFFERED = 1024 * 1024;

export interface TapRouteOptions {
  authorize?: TapAuthorizer;
}

function intParam(req: ApiRequest, name: string, max: number): number | undefined {
  const raw = req.query.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw badRequest(`${name} must be an integer 1..${max} (got ${JSON.stringify(raw)})`);
  return n;
}

export function tapRoutes(router: Router, ctx: ApiContext, opts: TapRouteOptions = {}): void {
  const authorize = opts.authorize ?? allowAllTap;
  router.add(
    'GET',
    '/v1/tap',
    async (req) => {
      const service = req.query.get('service') || undefined;
      const instance = req.query.get('instance') || undefined;
      const namespace = req.query.get('namespace') || undefined;
      if (!service && !instance) throw badRequest('query parameter service (or instance) is required');
      let filter;
      try {
        filter = parseTapFilter(req.query);
      } catch (err) {
        throw badRequest((err as Error).message.replace(/^tap: /, ''));
      }
      // The service filter of the proxies' own stream is redundant with picking them; a
      // caller may still filter by a peer service with `peer=`.
      const peer = req.query.get('peer') || undefined;
      const proxyFilter = { ...filter, service: peer };
      const rate = intParam(req, 'rate', 10_000);
      const limit = intParam(req, 'limit', 1_000_000);
      const targets = await findProxies(ctx, { service, namespace, instance });
      if (targets.length === 0)
        throw new ApiError(
          'HEXMESH_ERR_NOT_FOUND',
          instance
            ? `no proxy with instance id ${JSON.stringify(instance)} (it must run a sidecar with an admin address)`
            : `no proxies for service ${JSON.stringify(service)}${namespace ? ` in namespace ${namespace}` : ''}`,
        );
      await authorize(req, targets);
      const qs = new URLSearchParams(filterQuery(proxyFilter));
      if (rate !== undefined) qs.set('rate', String(rate));
      return { stream: (res: ServerResponse) => fanIn(res, req.signal, targets, qs, limit) };
    },
    'tap',
  );
}

function fanIn(
  res: ServerResponse,
  signal: AbortSignal,
  targets: readonly ProxyTarget[],
  qs: URLSearchParams,
  limit: number | undefined,
): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const line = (o: unknown) => res.write(`${JSON.stringify(o)}\n`);
  line({
    type: 'start',
    proxies: targets.map((t) => ({ id: t.id, service: t.service, adminAddress: t.adminAddress })),
  });
  let open = targets.length;
  let sent = 0;
  let dropped = 0;
  let reported = 0;
  let done = false;
  const requests: http.ClientRequest[] = [];
  const timer = setInterval(() => {
    if (dropped === reported) return;
    line({ type: 'dropped', count: dropped - reported, slowViewer: dropped - reported, proxy: null });
    reported = dropped;
  }, 1000);
  const finish = (reason: string) => {
    if (done) return;
    done = true;
    clearInterval(timer);
    for (const r of requests) r.destroy();
    if (!res.destroyed && !res.writableEnded)
      res.end(`${JSON.stringify({ type: 'end', reason, events: sent, dropped })}\n`);
  };
  // Aborted with an error: the caller's credential was revoked or expired (api-server.ts).
  signal.addEventListener(
    'abort',
    () => finish(signal.reason instanceof HexmeshError ? (signal.reason as HexmeshError).message : 'closed'),
    { once: true },
  );
  res.on('close', () => finish('closed'));
  for (const t of targets) {
    let gone = false;
    const goneWith = (reason: string) => {
      if (gone || done) return;
      gone = true;
      line({ type: 'proxy-gone', proxy: t.id, adminAddress: t.adminAddress, reason });
      if (--open === 0) finish('no proxies left');
    };
    const r = http.get(`http://${t.adminAddress}/tap?${qs}`, { agent: false, timeout: 5000 }, (pres) => {
      r.setTimeout(0);
      if (pres.statusCode !== 200) {
        pres.resume();
        return goneWith(`proxy answered ${pres.statusCode}`);
      }
      pres.setEncoding('utf8');
      let buf = '';
      pres.on('data', (chunk: string) => {
        buf += chunk;
        let nl;
        while (!done && (nl = buf.indexOf('\n')) !== -1) {
          const raw = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let ev: Record<string, unknown>;
          try {
            ev = JSON.parse(raw) as Record<string, unknown>;
          } catch {
            continue;
          }
          if (ev.type === 'request') {
            if (res.writableLength > MAX_BUFFERED) {
              dropped++;
              continue;
            }
            ev.proxy = t.id;
            line(ev);
            if (limit !== undefined && ++sent >= limit) return finish('limit');
            if (limit === undefined) sent++;
          } else if (ev.type === 'dropped') line({ ...ev, proxy: t.id });
          else if (ev.type === 'error') goneWith(String(ev.message));
          else if (ev.type === 'end') goneWith(`proxy ended the stream (${String(ev.reason)})`);
        }
      });
      pres.on('end', () => goneWith('proxy closed the stream'));
      pres.on('error', (e) => goneWith(e.message));
      pres.on('close', () => goneWith('proxy connection closed'));
    });
    r.on('timeout', () => r.destroy(new Error('no answer within 5 s')));
    r.on('error', (e) => goneWith(`cannot reach proxy admin ${t.adminAddress}: ${e.message}`));
    requests.push(r);
  }
}
