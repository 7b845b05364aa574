/**
 * KV API (Consul-shaped): raw values under user keys, get/list by prefix, put with
 * check-and-set (`?cas=0` creates only), delete one or a prefix.
 */
import { isUtf8 } from 'node:buffer';
import { KEYS, StoreConflictError, type KeyValue } from '../../store/store.ts';
import { ApiError, badRequest } from '../http/error-response.ts';
import type { Router } from '../http/router.ts';
import { blockIfAsked, flag, type ApiContext } from './context.ts';
import type { Permission } from '../auth/roles.ts';

export interface KvEntry {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
}

const show = (kv: KeyValue): KvEntry => ({
  key: kv.key.slice(KEYS.kv.length),
  value: kv.value,
  modRevision: kv.modRevision,
  createRevision: kv.createRevision,
});

function casParam(query: URLSearchParams): number | undefined {
  const raw = query.get('cas');
  if (raw === null) return undefined;
  const n = Number(raw);
  if (raw === '' || !Number.isSafeInteger(n) || n < 0)
    throw badRequest(`cas must be a non-negative integer (got ${JSON.stringify(raw)})`);
  return n;
}

/**
 * The body as text. Values are strings in the store (and in every answer), so bytes that are
 * not UTF-8 are refused: decoding them would store U+FFFD in their place, silently.
 */
function textValue(body: Buffer): string {
  const text = body.toString('utf8');
  if (isUtf8(body)) return text;
  // The re-encoded text matches the body up to the first byte that was not UTF-8.
  const back = Buffer.from(text, 'utf8');
  let at = 0;
  while (at < body.length && body[at] === back[at]) at++;
  throw badRequest(
    `value is not valid UTF-8 (byte ${at}): KV values are text; encode binary data, e.g. as base64`,
  );
}

/** Where rollouts keep status and history (src/rollout/rollout-status.ts): readable with rollouts:read. */
const ROLLOUTS_PREFIX = 'rollouts/';

/** Viewers may list keys (`?keys`) and read rollout status; other values need kv:read. */
const kvReadPermission = (req: {
  query: URLSearchParams;
  params: Readonly<Record<string, string>>;
}): Permission => {
  if (flag(req.query, 'keys')) return 'kv:list';
  const key = req.params.key ?? '';
  return key.startsWith(ROLLOUTS_PREFIX) ? 'rollouts:read' : 'kv:read';
};

export function kvRoutes(router: Router, ctx: ApiContext): void {
  router.add(
    'GET',
    '/v1/kv/*key',
    async (req) => {
      const key = req.params.key;
      const many = flag(req.query, 'recurse') || flag(req.query, 'keys');
      if (!key && !many) throw badRequest('a key is required (or ?recurse=1 / ?keys=1 to list)');
      const full = KEYS.kv + key;
      await blockIfAsked(ctx, req, full, !many);
      const r = await ctx.store.range(full, many ? undefined : { limit: 1 });
      if (flag(req.query, 'keys'))
        return { json: r.kvs.map((kv) => kv.key.slice(KEYS.kv.length)), index: r.revision };
      if (many) return { json: r.kvs.map(show), index: r.revision };
      const kv = r.kvs[0]?.key === full ? r.kvs[0] : undefined;
      if (!kv)
        throw new ApiError('HEXMESH_ERR_NOT_FOUND', `key ${JSON.stringify(key)} not found`, {
          details: { index: r.revision },
        });
      return { json: show(kv), index: r.revision };
    },
    kvReadPermission,
  );

  router.add(
    'PUT',
    '/v1/kv/*key',
    async (req) => {
      const key = req.params.key;
      if (!key) throw badRequest('a key is required');
      const cas = casParam(req.query);
      const value = textValue(await req.body());
      try {
        const w = await ctx.store.put(KEYS.kv + key, value, { prevModRevision: cas });
        return { json: { ok: true, modRevision: w.revision }, index: w.revision };
      } catch (e) {
        // As Consul: a failed check-and-set is an answer (`false`), not an error.
        if (e instanceof StoreConflictError) return { json: { ok: false, modRevision: e.actual } };
        throw e;
      }
    },
    'kv:write',
  );

  router.add(
    'DELETE',
    '/v1/kv/*key',
    async (req) => {
      const key = req.params.key;
      const recurse = flag(req.query, 'recurse');
      if (!key && !recurse) throw badRequest('a key is required (or ?recurse=1 to delete every key)');
      const cas = casParam(req.query);
      if (recurse && cas !== undefined) throw badRequest('cas cannot be combined with recurse');
      try {
        const r = recurse
          ? await ctx.store.deletePrefix(KEYS.kv + key)
          : await ctx.store.delete(KEYS.kv + key, { prevModRevision: cas });
        // A check-and-set delete succeeds only if it deleted the key at that revision.
        return { json: { ok: cas === undefined || r.deleted > 0, deleted: r.deleted }, index: r.revision };
      } catch (e) {
        if (e instanceof StoreConflictError)
          return { json: { ok: false, deleted: 0, modRevision: e.actual } };
        throw e;
      }
    },
    'kv:write',
  );
}
