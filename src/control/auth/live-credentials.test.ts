/**
 * LiveCredentials when its store watch breaks: a revocation made while it was not watching
 * still cuts the stream, found by the re-check it runs before watching again. The store is a
 * real SQLite store; only the watch's failure is forced (its `onError`, as a broken etcd
 * stream or a compaction would call it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Store, WatchOptions } from '../../store/store.ts';
import { tempStore } from '../../../test/control/helpers.ts';
import type { Principal } from './api-auth.ts';
import { API_TOKENS_PREFIX } from './api-tokens.ts';
import { LiveCredentials } from './live-credentials.ts';

/** The store, with each watch's `onError` kept so the test can break the watches. */
function breakable(store: Store): { store: Store; breakWatches(): void } {
  const onErrors: ((err: Error) => void)[] = [];
  const watch = (prefix: string, opts: WatchOptions) => {
    if (opts.onError) onErrors.push(opts.onError);
    return store.watch(prefix, opts);
  };
  const wrapped = new Proxy(store, {
    get(target, name) {
      if (name === 'watch') return watch;
      const v: unknown = Reflect.get(target, name, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return {
    store: wrapped,
    breakWatches: () => {
      for (const f of onErrors.splice(0)) f(new Error('watch stream broken'));
    },
  };
}

const principal = (id: string): Principal => ({
  kind: 'token',
  role: 'viewer',
  id,
  name: 'dash',
  credential: { kind: 'api-token', id },
});

test('a token revoked while the watch was broken still cuts its stream (re-check before watching again)', async () => {
  const s = await tempStore();
  const b = breakable(s.store);
  const errors: unknown[] = [];
  const live = new LiveCredentials({ store: b.store, onError: (e) => errors.push(e) });
  try {
    await s.store.put(`${API_TOKENS_PREFIX}t1`, '{}');
    await s.store.put(`${API_TOKENS_PREFIX}t2`, '{}');
    await live.start();
    let cut: HexmeshError | undefined;
    live.hold(principal('t1'), (err) => (cut = err));
    let other: HexmeshError | undefined;
    live.hold(principal('t2'), (err) => (other = err));

    b.breakWatches();
    // Revoked while nothing watches: no event will ever say so.
    await s.store.delete(`${API_TOKENS_PREFIX}t1`);
    const deadline = Date.now() + 5000;
    while (cut === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(cut, 'the stream of the revoked token was cut after the watch came back');
    assert.equal(cut.code, 'HEXMESH_ERR_UNAUTHENTICATED');
    assert.match(cut.message, /API token t1 was revoked/);
    assert.equal(other, undefined, 'a token still in the store keeps its stream');
    assert.match(String(errors[0]), /watch stream broken/, 'the break was reported');

    // Watching again: a later revocation arrives as an event.
    await s.store.delete(`${API_TOKENS_PREFIX}t2`);
    const later = Date.now() + 5000;
    while (other === undefined && Date.now() < later) await new Promise((r) => setTimeout(r, 20));
    assert.match(String((other as HexmeshError | undefined)?.message), /API token t2 was revoked/);
  } finally {
    live.close();
    await s.close();
  }
});
