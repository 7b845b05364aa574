import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../store/sqlite-store.ts';
import { KEYS, StoreConflictError, StoreLeaseNotFoundError, type Store } from '../../store/store.ts';
import { Catalog } from './catalog.ts';
import { registerSchema } from './instance.ts';

const input = registerSchema.parse({ id: 'r1', service: 'reviews', address: '127.0.0.1', port: 9080 });
const key = KEYS.instance('default', 'reviews', 'r1');

async function openStore(t: { after(fn: () => unknown): void }): Promise<SqliteStore> {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-catalog-'));
  const store = await SqliteStore.open(join(dir, 'hexmesh.db'));
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** The real store, with the leases it grants recorded and, while `racing`, another writer
 * changing the instance key between every read and the compare-and-set that follows. */
function racingStore(real: SqliteStore): { store: Store; granted: number[]; racing: { on: boolean } } {
  const granted: number[] = [];
  const racing = { on: true };
  const store = new Proxy(real, {
    get(target, prop) {
      if (prop === 'grantLease')
        return async (ttl: number) => {
          const lease = await target.grantLease(ttl);
          granted.push(lease);
          return lease;
        };
      if (prop === 'get')
        return async (k: string) => {
          const kv = await target.get(k);
          if (racing.on && k === key) await target.put(k, JSON.stringify({ id: 'r1', other: 'writer' }));
          return kv;
        };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as Store;
  return { store, granted, racing };
}

test('register that loses every compare-and-set revokes the lease it granted', async (t) => {
  const real = await openStore(t);
  const { store, granted, racing } = racingStore(real);
  const catalog = new Catalog(store);
  await assert.rejects(catalog.register(input), StoreConflictError);
  assert.equal(granted.length, 1);
  await assert.rejects(real.keepAlive(granted[0]), StoreLeaseNotFoundError, 'the lease was given back');

  // Without the other writer, register succeeds and its lease stays alive.
  racing.on = false;
  const inst = await catalog.register(input);
  assert.equal(inst.lease, granted[1]);
  await real.keepAlive(inst.lease);
});

test('register with a caller-owned lease never revokes it on failure', async (t) => {
  const real = await openStore(t);
  const { store } = racingStore(real);
  const lease = await real.grantLease(60_000);
  await assert.rejects(new Catalog(store).register(input, { lease }), StoreConflictError);
  await real.keepAlive(lease);
});
