/**
 * `GET /v1/watch?prefix=resources|instances|kv[/sub]&fromIndex=N`: an NDJSON stream of
 * every change under the prefix with an index above N (so the index of a previous read
 * gives exactly what happened after it), then live changes; a heartbeat line every 15 s
 * keeps proxies and load balancers from timing the stream out. A consumer that stops
 * reading is cut off rather than buffered without bound.
 */
import type { ServerResponse } from 'node:http';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { StoreCompactedError, type WatchEvent } from '../../store/store.ts';
import { badRequest } from '../http/error-response.ts';
import type { Router } from '../http/router.ts';
import { showResource } from './resources.ts';
import type { ApiContext } from './context.ts';
import type { Permission } from '../auth/roles.ts';

const ROOT = '/hexmesh/';
const AREAS = new Set(['resources', 'instances', 'kv']);

/** A watch streams values: resources:read, catalog:read or kv:read by area (unknown areas fail later with 400). */
function watchPermission(req: { query: URLSearchParams }): Permission {
  const area = (req.query.get('prefix') ?? '').split('/')[0];
  return area === 'resources' ? 'resources:read' : area === 'instances' ? 'catalog:read' : 'kv:read';
}
/** Bytes a watcher may fall behind before the stream is closed. */
const MAX_BUFFERED = 4 * 1024 * 1024;

export interface WatchLine {
  type: 'put' | 'delete' | 'heartbeat' | 'error';
  key?: string;
  value?: unknown;
  index: number;
  message?: string;
}

export function watchRoutes(router: Router, ctx: ApiContext, opts: { heartbeatMs?: number } = {}): void {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  router.add(
    'GET',
    '/v1/watch',
    async (req) => {
      const prefix = req.query.get('prefix') ?? '';
      const area = prefix.split('/')[0];
      if (!AREAS.has(area))
        throw badRequest(`prefix must start with resources, instances or kv (got ${JSON.stringify(prefix)})`);
      const storePrefix = ROOT + (prefix === area ? `${area}/` : prefix);
      const rawFrom = req.query.get('fromIndex');
      let fromIndex: number | undefined;
      if (rawFrom !== null) {
        fromIndex = Number(rawFrom);
        if (rawFrom === '' || !Number.isSafeInteger(fromIndex) || fromIndex < 0)
          throw badRequest(`fromIndex must be a non-negative integer (got ${JSON.stringify(rawFrom)})`);
      }
      // Without fromIndex: from the store's revision now, never a watch without a start
      // revision (etcd would start it only when acknowledged, missing writes in between).
      const current = await ctx.store.revision();
      let index = fromIndex ?? current;
      // Ahead of the store (the client's index predates a restore from backup): a watch from
      // there would wait for revisions that will mean something else. Answer at once with the
      // current index to re-read from, rather than hang.
      if (index > current)
        return {
          stream(res: ServerResponse) {
            const line: WatchLine = {
              type: 'error',
              index: current,
              message: `fromIndex ${index} is ahead of the store (index ${current}; restored from a backup?): re-read the current state, then watch with fromIndex=${current}`,
            };
            res.writeHead(200, {
              'content-type': 'application/x-ndjson',
              'cache-control': 'no-store',
              'x-hexmesh-index': String(current),
            });
            res.end(`${JSON.stringify(line)}\n`);
          },
        };
      const release = ctx.slots.acquire('watch');
      return {
        stream(res: ServerResponse) {
          // The client may have gone while the handler ran: 'close' will not fire again.
          if (res.destroyed || req.signal.aborted) {
            release();
            return;
          }
          res.writeHead(200, {
            'content-type': 'application/x-ndjson',
            'cache-control': 'no-store',
            'x-hexmesh-index': String(index),
          });
          // Now, not with the first event: the client learns the index (and that the
          // watch is up) without waiting up to a heartbeat period.
          res.flushHeaders();
          const write = (line: WatchLine): void => {
            if (res.destroyed) return;
            res.write(`${JSON.stringify(line)}\n`);
            if (res.writableLength > MAX_BUFFERED) {
              res.destroy(new Error('watch consumer too slow'));
              stop();
            }
          };
          const watcher = ctx.store.watch(storePrefix, {
            fromRevision: index + 1,
            onEvents: (events) => {
              for (const e of events) {
                index = Math.max(index, e.kv.modRevision);
                write(toLine(e, area));
              }
            },
            onError: (err) => {
              stop();
              if (!(err instanceof StoreCompactedError)) {
                write({
                  type: 'error',
                  index,
                  message: `watch broke: ${err.message}; resume with fromIndex=${index}`,
                });
                res.end();
                return;
              }
              // The changes after `index` are gone: resuming from it would break the same way
              // again (a loop). The client must re-read, then watch from what it read.
              void ctx.store
                .revision()
                .catch(() => ctx.tracker.revision)
                .then((rev) => {
                  write({
                    type: 'error',
                    index: rev,
                    message: `watch broke: the changes after index ${index} were compacted${
                      err.compactRevision === undefined ? '' : ` (kept from index ${err.compactRevision + 1})`
                    }; re-read the current state (a GET without index), then watch with fromIndex=<its index> (now ${rev})`,
                  });
                  res.end();
                });
            },
          });
          const timer = setInterval(
            () => write({ type: 'heartbeat', index: Math.max(index, ctx.tracker.revision) }),
            heartbeatMs,
          );
          let stopped = false;
          const stop = (): void => {
            if (stopped) return;
            stopped = true;
            clearInterval(timer);
            watcher.close();
            release();
          };
          req.signal.addEventListener(
            'abort',
            () => {
              // Its credential was revoked or expired (api-server.ts): say so before ending.
              const why: unknown = req.signal.reason;
              if (why instanceof HexmeshError)
                write({ type: 'error', index, message: `${why.message}: watch closed, authenticate again` });
              stop();
              res.end();
            },
            { once: true },
          );
          res.on('close', stop);
        },
      };
    },
    watchPermission,
  );
}

function toLine(e: WatchEvent, area: string): WatchLine {
  const key = e.kv.key.slice(ROOT.length);
  if (e.type === 'delete') return { type: 'delete', key, index: e.kv.modRevision };
  let value: unknown = e.kv.value;
  if (area === 'resources') value = showResource(e.kv);
  else if (area === 'instances') value = JSON.parse(e.kv.value);
  return { type: 'put', key, value, index: e.kv.modRevision };
}
