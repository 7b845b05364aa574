import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../store/sqlite-store.ts';
import type { Store, WatchOptions } from '../../store/store.ts';
import { ChangeTracker } from './blocking.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function refTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

test('a watch failure, then the store closes before the retry: no unhandled rejection, no timer holding the process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-tracker-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const real = await SqliteStore.open(join(dir, 'hexmesh.db'));
  // The real store, with each watch's onError kept so the test can fail the watch the way
  // etcd does when its connection drops (the embedded store ends watches silently on close).
  const failWatch: Array<(err: Error) => void> = [];
  const store = new Proxy(real, {
    get(target, prop) {
      if (prop === 'watch')
        return (prefix: string, opts: WatchOptions) => {
          if (opts.onError) failWatch.push(opts.onError);
          return target.watch(prefix, opts);
        };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as Store;
  const tracker = new ChangeTracker(store);
  t.after(() => tracker.close());
  await tracker.start();
  assert.equal(failWatch.length, 1);

  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  t.after(() => process.off('unhandledRejection', onRejection));

  const baseline = refTimers();
  const waiting = tracker.wait('/hexmesh/kv/', tracker.revision, 60_000, new AbortController().signal);
  failWatch[0](new Error('connection lost'));
  await waiting; // a failed watch releases its waiters at once
  await real.close();
  assert.equal(refTimers(), baseline, 'the retry timer is unref’d');
  // Past two retry rounds (500 ms each): each retry fails against the closed store.
  await sleep(1300);
  assert.deepEqual(rejections, []);
  assert.equal(refTimers(), baseline, 'retries stay unref’d');
});
