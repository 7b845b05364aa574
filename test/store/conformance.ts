/**
 * The one conformance suite every Store backend runs (as hono's router/common.case.test.ts):
 * the embedded SQLite store and etcd must be interchangeable for the control plane.
 *
 * Each test opens a store with `makeStore`, works under its own random key prefix (so a
 * shared backend such as one etcd cluster needs no wiping) and never assumes the store is
 * empty or that nobody else bumps the revision, then `cleanup`s.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  StoreConflictError,
  StoreLeaseNotFoundError,
  type KeyValue,
  type Store,
  type WatchEvent,
} from '../../src/store/store.ts';

export interface ConformanceOptions {
  /** Lease TTL for expiry tests; etcd rounds up to whole seconds and its minimum TTL. */
  leaseTtlMs?: number;
  /** Upper bound on waiting for a lease to expire (TTL + sweep/election slack). */
  expiryWaitMs?: number;
  /** fast-check runs of the model-based test. */
  modelRuns?: number;
}

/** Poll `cond` every 20 ms until it holds or `timeoutMs` passes (then fail naming `what`). */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A unique key prefix per test. */
export const uniquePrefix = (tag: string) => `/conformance/${tag}-${randomBytes(4).toString('hex')}/`;

/** Records a watch's batches and errors. */
export class Recorder {
  readonly batches: WatchEvent[][] = [];
  readonly errors: Error[] = [];
  readonly watcher;

  constructor(store: Store, prefix: string, fromRevision?: number) {
    this.watcher = store.watch(prefix, {
      ...(fromRevision !== undefined ? { fromRevision } : {}),
      onEvents: (events) => {
        this.batches.push([...events]);
      },
      onError: (err) => {
        this.errors.push(err);
      },
    });
  }

  get events(): WatchEvent[] {
    return this.batches.flat();
  }

  /** Wait until at least `n` events arrived. */
  async waitForEvents(n: number, timeoutMs = 10_000): Promise<WatchEvent[]> {
    await waitFor(() => this.events.length >= n, timeoutMs, `${n} watch events (have ${this.events.length})`);
    return this.events;
  }

  close(): void {
    this.watcher.close();
  }
}

const brief = (e: WatchEvent) => `${e.type} ${e.kv.key}=${e.kv.value}@${e.kv.modRevision}`;

export function runStoreConformance(
  name: string,
  makeStore: () => Promise<Store>,
  cleanup: (store: Store) => Promise<void> = (s) => s.close(),
  options: ConformanceOptions = {},
): void {
  const leaseTtl = options.leaseTtlMs ?? 1000;
  const expiryWait = options.expiryWaitMs ?? 10_000;

  describe(`store conformance: ${name}`, () => {
    const open: Store[] = [];
    const recorders: Recorder[] = [];
    async function store(): Promise<Store> {
      const s = await makeStore();
      open.push(s);
      return s;
    }
    function record(s: Store, prefix: string, fromRevision?: number): Recorder {
      const r = new Recorder(s, prefix, fromRevision);
      recorders.push(r);
      return r;
    }
    afterEach(async () => {
      for (const r of recorders.splice(0)) r.close();
      for (const s of open.splice(0)) await cleanup(s);
    });

    test('get of a missing key is undefined; put then get returns the value and its revisions', async () => {
      const s = await store();
      const p = uniquePrefix('get');
      assert.equal(await s.get(`${p}a`), undefined);
      const before = await s.revision();
      const w = await s.put(`${p}a`, 'one');
      assert.ok(w.revision > before, `put revision ${w.revision} > ${before}`);
      const kv = await s.get(`${p}a`);
      assert.deepEqual(kv, {
        key: `${p}a`,
        value: 'one',
        createRevision: w.revision,
        modRevision: w.revision,
        version: 1,
        lease: 0,
      });
    });

    test('update keeps createRevision and bumps modRevision and version; delete then put starts over', async () => {
      const s = await store();
      const k = `${uniquePrefix('ver')}k`;
      const w1 = await s.put(k, 'v1');
      const w2 = await s.put(k, 'v2');
      const w3 = await s.put(k, 'v3');
      assert.ok(w1.revision < w2.revision && w2.revision < w3.revision);
      assert.deepEqual(await s.get(k), {
        key: k,
        value: 'v3',
        createRevision: w1.revision,
        modRevision: w3.revision,
        version: 3,
        lease: 0,
      });
      const d = await s.delete(k);
      assert.equal(d.deleted, 1);
      assert.ok(d.revision > w3.revision);
      assert.equal(await s.get(k), undefined);
      const w4 = await s.put(k, 'again');
      const kv = await s.get(k);
      assert.equal(kv?.createRevision, w4.revision);
      assert.equal(kv?.version, 1);
    });

    test('values are kept byte for byte (unicode, empty, large)', async () => {
      const s = await store();
      const p = uniquePrefix('val');
      const values = [
        '',
        'héllo wörld ✓ 𝄞',
        JSON.stringify({ a: [1, 2, { b: 'c' }] }),
        'x'.repeat(256 * 1024),
      ];
      for (const [i, v] of values.entries()) await s.put(`${p}${i}`, v);
      for (const [i, v] of values.entries()) assert.equal((await s.get(`${p}${i}`))?.value, v);
    });

    test('range returns keys under the prefix in key order, honours limit, excludes siblings', async () => {
      const s = await store();
      const p = uniquePrefix('range');
      const keys = ['b', 'a/2', 'c', 'a', 'a/1', 'ab'];
      for (const k of keys) await s.put(`${p}${k}`, k);
      await s.put(`${p.slice(0, -1)}X/outside`, 'no'); // shares all but the trailing '/'
      await s.put(`${p.slice(0, -1)}`, 'no');
      const last = await s.put(`${p}d`, 'd');
      const all = await s.range(p);
      assert.deepEqual(
        all.kvs.map((kv) => kv.key.slice(p.length)),
        ['a', 'a/1', 'a/2', 'ab', 'b', 'c', 'd'],
      );
      assert.ok(all.revision >= last.revision, `range revision ${all.revision} >= ${last.revision}`);
      const limited = await s.range(p, { limit: 3 });
      assert.deepEqual(
        limited.kvs.map((kv) => kv.key.slice(p.length)),
        ['a', 'a/1', 'a/2'],
      );
      const sub = await s.range(`${p}a/`);
      assert.deepEqual(
        sub.kvs.map((kv) => kv.value),
        ['a/1', 'a/2'],
      );
      assert.deepEqual((await s.range(`${p}zzz`)).kvs, []);
    });

    test('revisions are strictly increasing across writes; revision() is at least the last write', async () => {
      const s = await store();
      const p = uniquePrefix('rev');
      let prev = await s.revision();
      for (let i = 0; i < 20; i++) {
        const w = i % 3 === 2 ? await s.delete(`${p}${i - 1}`) : await s.put(`${p}${i}`, String(i));
        assert.ok(w.revision > prev, `write ${i}: revision ${w.revision} > ${prev}`);
        prev = w.revision;
        assert.ok((await s.revision()) >= w.revision);
      }
      // A delete that deletes nothing is not a write.
      const none = await s.delete(`${p}absent`);
      assert.equal(none.deleted, 0);
      assert.ok(none.revision >= prev);
      const nonePrefix = await s.deletePrefix(`${p}absent/`);
      assert.equal(nonePrefix.deleted, 0);
    });

    test('CAS create-only: prevModRevision 0 succeeds when absent, conflicts when present', async () => {
      const s = await store();
      const k = `${uniquePrefix('cas0')}k`;
      const w = await s.put(k, 'first', { prevModRevision: 0 });
      await assert.rejects(s.put(k, 'second', { prevModRevision: 0 }), (err: unknown) => {
        assert.ok(err instanceof StoreConflictError, `got ${String(err)}`);
        assert.equal(err.code, 'HEXMESH_ERR_STORE_CONFLICT');
        assert.equal(err.key, k);
        assert.equal(err.expected, 0);
        assert.equal(err.actual, w.revision);
        return true;
      });
      const kv = await s.get(k);
      assert.equal(kv?.value, 'first');
      assert.equal(kv?.modRevision, w.revision);
    });

    test('CAS update-if-unchanged: the current modRevision wins, a stale one conflicts and changes nothing', async () => {
      const s = await store();
      const k = `${uniquePrefix('cas')}k`;
      const w1 = await s.put(k, 'v1');
      const w2 = await s.put(k, 'v2', { prevModRevision: w1.revision });
      await assert.rejects(s.put(k, 'v3', { prevModRevision: w1.revision }), (err: unknown) => {
        assert.ok(err instanceof StoreConflictError);
        assert.equal(err.expected, w1.revision);
        assert.equal(err.actual, w2.revision);
        return true;
      });
      // Updating a key that does not exist with a non-zero expectation conflicts too.
      await assert.rejects(s.put(`${k}-absent`, 'x', { prevModRevision: w1.revision }), (err: unknown) => {
        assert.ok(err instanceof StoreConflictError);
        assert.equal(err.actual, 0);
        return true;
      });
      assert.equal(await s.get(`${k}-absent`), undefined);
      const kv = await s.get(k);
      assert.equal(kv?.value, 'v2');
      assert.equal(kv?.version, 2);
    });

    test('CAS delete-if-unchanged: stale modRevision conflicts and keeps the key; current one deletes', async () => {
      const s = await store();
      const k = `${uniquePrefix('casdel')}k`;
      const w1 = await s.put(k, 'v1');
      const w2 = await s.put(k, 'v2');
      await assert.rejects(s.delete(k, { prevModRevision: w1.revision }), StoreConflictError);
      assert.equal((await s.get(k))?.value, 'v2');
      const d = await s.delete(k, { prevModRevision: w2.revision });
      assert.equal(d.deleted, 1);
      assert.equal(await s.get(k), undefined);
    });

    test('concurrent writers with CAS on one key: exactly one wins', async () => {
      const s = await store();
      const k = `${uniquePrefix('race')}k`;
      const w = await s.put(k, 'base');
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => s.put(k, `writer-${i}`, { prevModRevision: w.revision })),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1, `one winner, got ${won.length}`);
      for (const r of lost) assert.ok(r.reason instanceof StoreConflictError, `loser: ${String(r.reason)}`);
      const kv = await s.get(k);
      assert.equal(kv?.version, 2);
      // And the create-only race: exactly one creator.
      const k2 = `${k}-create`;
      const creates = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => s.put(k2, `c${i}`, { prevModRevision: 0 })),
      );
      assert.equal(creates.filter((r) => r.status === 'fulfilled').length, 1);
    });

    test('deletePrefix deletes every key under the prefix in one revision and nothing else', async () => {
      const s = await store();
      const p = uniquePrefix('delp');
      for (const k of ['a', 'b', 'c/d']) await s.put(`${p}dir/${k}`, k);
      await s.put(`${p}dirX`, 'keep');
      await s.put(`${p}other`, 'keep');
      const rec = record(s, p, (await s.revision()) + 1);
      const d = await s.deletePrefix(`${p}dir/`);
      assert.equal(d.deleted, 3);
      assert.deepEqual(
        (await s.range(p)).kvs.map((kv) => kv.key.slice(p.length)),
        ['dirX', 'other'],
      );
      const events = await rec.waitForEvents(3);
      assert.equal(events.length, 3);
      for (const e of events) {
        assert.equal(e.type, 'delete');
        assert.equal(e.kv.modRevision, d.revision, 'one revision for the whole prefix');
      }
      assert.deepEqual(events.map((e) => e.prevKv?.value).sort(), ['a', 'b', 'c/d']);
    });

    test('watch from a past revision replays history, then delivers live events', async () => {
      const s = await store();
      const p = uniquePrefix('replay');
      const w1 = await s.put(`${p}a`, '1');
      await s.put(`${p}b`, '2');
      await s.put(`${p}a`, '3');
      await s.delete(`${p}b`);
      const rec = record(s, p, w1.revision);
      const replayed = await rec.waitForEvents(4);
      assert.deepEqual(
        replayed.map(brief).map((x) => x.replace(/@\d+$/, '')),
        [`put ${p}a=1`, `put ${p}b=2`, `put ${p}a=3`, `delete ${p}b=`],
      );
      assert.equal(replayed[0]!.kv.modRevision, w1.revision);
      assert.equal(replayed[2]!.prevKv?.value, '1', 'replayed update carries prevKv');
      assert.equal(replayed[3]!.prevKv?.value, '2', 'replayed delete carries prevKv');
      const live = await s.put(`${p}c`, '4');
      const all = await rec.waitForEvents(5);
      assert.equal(all.length, 5);
      assert.equal(all[4]!.kv.key, `${p}c`);
      assert.equal(all[4]!.kv.modRevision, live.revision);
      assert.equal(rec.errors.length, 0);
    });

    test('watch without fromRevision sees only later writes; prefix filters other keys', async () => {
      const s = await store();
      const p = uniquePrefix('live');
      await s.put(`${p}before`, 'old');
      const rec = record(s, `${p}in/`);
      // etcd acknowledges the watch asynchronously: give it a moment before writing.
      await sleep(200);
      await s.put(`${p}out/x`, 'no');
      await s.put(`${p}in/x`, 'yes');
      const events = await rec.waitForEvents(1);
      await sleep(100);
      assert.deepEqual(
        rec.events.map((e) => e.kv.key),
        [`${p}in/x`],
      );
      assert.equal(events[0]!.kv.value, 'yes');
    });

    test('prevKv on update and delete; delete events carry the delete revision and an empty value', async () => {
      const s = await store();
      const k = `${uniquePrefix('prev')}k`;
      const start = (await s.revision()) + 1;
      const rec = record(s, k, start);
      const w1 = await s.put(k, 'v1');
      const w2 = await s.put(k, 'v2');
      const d = await s.delete(k);
      const [create, update, del] = await rec.waitForEvents(3);
      assert.equal(create!.type, 'put');
      assert.equal(create!.prevKv, undefined);
      assert.equal(create!.kv.version, 1);
      assert.equal(update!.type, 'put');
      assert.equal(update!.kv.value, 'v2');
      assert.equal(update!.kv.createRevision, w1.revision);
      assert.equal(update!.kv.modRevision, w2.revision);
      assert.equal(update!.prevKv?.value, 'v1');
      assert.equal(update!.prevKv?.modRevision, w1.revision);
      assert.equal(del!.type, 'delete');
      assert.equal(del!.kv.key, k);
      assert.equal(del!.kv.value, '');
      assert.equal(del!.kv.modRevision, d.revision);
      assert.equal(del!.prevKv?.value, 'v2');
      assert.equal(del!.prevKv?.version, 2);
    });

    test('watch batches arrive in revision order and never split a revision', async () => {
      const s = await store();
      const p = uniquePrefix('order');
      const rec = record(s, p, (await s.revision()) + 1);
      let expected = 0;
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 4; i++) await s.put(`${p}${round}/${i}`, String(i));
        expected += 4;
        await s.deletePrefix(`${p}${round}/`); // 4 events in one revision
        expected += 4;
      }
      await Promise.all(Array.from({ length: 10 }, (_, i) => s.put(`${p}burst/${i}`, 'x')));
      expected += 10;
      const events = await rec.waitForEvents(expected);
      assert.equal(events.length, expected);
      for (let i = 1; i < events.length; i++) {
        assert.ok(events[i]!.kv.modRevision >= events[i - 1]!.kv.modRevision, `event ${i} out of order`);
      }
      for (let b = 1; b < rec.batches.length; b++) {
        const prevBatch = rec.batches[b - 1]!;
        assert.notEqual(
          prevBatch[prevBatch.length - 1]!.kv.modRevision,
          rec.batches[b]![0]!.kv.modRevision,
          'a revision was split',
        );
      }
    });

    test('closing a watcher stops delivery; close is idempotent', async () => {
      const s = await store();
      const p = uniquePrefix('wclose');
      const rec = record(s, p, (await s.revision()) + 1);
      await s.put(`${p}a`, '1');
      await rec.waitForEvents(1);
      rec.close();
      rec.close();
      await s.put(`${p}b`, '2');
      await sleep(300);
      assert.equal(rec.events.length, 1);
    });

    test('a leased key carries the lease; the lease expires the key with a delete event', async () => {
      const s = await store();
      const p = uniquePrefix('lease');
      const lease = await s.grantLease(leaseTtl);
      assert.ok(Number.isSafeInteger(lease) && lease > 0, `lease id ${lease}`);
      await s.put(`${p}a`, 'a', { lease });
      await s.put(`${p}b`, 'b', { lease });
      await s.put(`${p}keep`, 'keep');
      assert.equal((await s.get(`${p}a`))?.lease, lease);
      const rec = record(s, p, (await s.revision()) + 1);
      await waitFor(async () => (await s.get(`${p}a`)) === undefined, expiryWait, 'the leased key to expire');
      assert.equal(await s.get(`${p}b`), undefined);
      assert.equal((await s.get(`${p}keep`))?.value, 'keep');
      const events = await rec.waitForEvents(2);
      assert.deepEqual(events.map((e) => `${e.type} ${e.kv.key}`).sort(), [`delete ${p}a`, `delete ${p}b`]);
      await assert.rejects(s.keepAlive(lease), StoreLeaseNotFoundError);
      await assert.rejects(s.put(`${p}c`, 'c', { lease }), StoreLeaseNotFoundError);
    });

    test('keepAlive extends a lease past its TTL', async () => {
      const s = await store();
      const k = `${uniquePrefix('keep')}k`;
      const lease = await s.grantLease(leaseTtl);
      await s.put(k, 'alive', { lease });
      // etcd rounds the TTL up to whole seconds (and its minimum): outlive that 2.5 times.
      const horizon = Math.max(leaseTtl, 1000) * 2.5;
      const started = Date.now();
      while (Date.now() - started < horizon) {
        await s.keepAlive(lease);
        await sleep(Math.min(250, leaseTtl / 4));
      }
      assert.equal((await s.get(k))?.value, 'alive', 'kept alive past the TTL');
      await waitFor(
        async () => (await s.get(k)) === undefined,
        expiryWait,
        'the key to expire once keepalives stop',
      );
    });

    test('revoke deletes the lease keys at once with delete events; revoking again fails', async () => {
      const s = await store();
      const p = uniquePrefix('revoke');
      const lease = await s.grantLease(60_000);
      await s.put(`${p}a`, 'a', { lease });
      await s.put(`${p}b`, 'b', { lease });
      const rec = record(s, p, (await s.revision()) + 1);
      await s.revokeLease(lease);
      assert.deepEqual((await s.range(p)).kvs, []);
      const events = await rec.waitForEvents(2);
      assert.ok(events.every((e) => e.type === 'delete'));
      assert.equal(events[0]!.kv.modRevision, events[1]!.kv.modRevision, 'one revision for the revoke');
      await assert.rejects(s.revokeLease(lease), StoreLeaseNotFoundError);
      await assert.rejects(s.keepAlive(lease), StoreLeaseNotFoundError);
    });

    test('putting a key without its lease detaches it from the lease', async () => {
      const s = await store();
      const k = `${uniquePrefix('detach')}k`;
      const lease = await s.grantLease(60_000);
      await s.put(k, 'leased', { lease });
      await s.put(k, 'free');
      assert.equal((await s.get(k))?.lease, 0);
      await s.revokeLease(lease);
      assert.equal((await s.get(k))?.value, 'free');
    });

    test('close is idempotent and later calls fail', async () => {
      const s = await store();
      await s.put(`${uniquePrefix('close')}k`, 'v');
      await s.close();
      await s.close();
      await assert.rejects(s.get('/x'));
    });

    test('model-based: random puts, CAS and deletes agree with a map', async () => {
      const s = await store();
      const keyArb = fc.constantFrom('a', 'b', 'c', 'd/e', 'd/f');
      const opArb = fc.oneof(
        fc.record({ op: fc.constant('put' as const), key: keyArb, value: fc.string({ maxLength: 8 }) }),
        fc.record({
          op: fc.constant('cas' as const),
          key: keyArb,
          value: fc.string({ maxLength: 8 }),
          stale: fc.boolean(),
        }),
        fc.record({ op: fc.constant('create' as const), key: keyArb, value: fc.string({ maxLength: 8 }) }),
        fc.record({ op: fc.constant('delete' as const), key: keyArb }),
        fc.record({ op: fc.constant('deletePrefix' as const), key: fc.constant('d/') }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
          const p = uniquePrefix('model');
          const model = new Map<string, { value: string; version: number; mod: number; create: number }>();
          let lastRev = 0;
          for (const o of ops) {
            const k = p + o.key;
            const cur = model.get(k);
            if (o.op === 'put' || (o.op === 'cas' && !o.stale && cur) || (o.op === 'create' && !cur)) {
              const opts =
                o.op === 'cas'
                  ? { prevModRevision: cur!.mod }
                  : o.op === 'create'
                    ? { prevModRevision: 0 }
                    : {};
              const w = await s.put(k, o.value, opts);
              assert.ok(w.revision > lastRev);
              lastRev = w.revision;
              model.set(k, {
                value: o.value,
                version: (cur?.version ?? 0) + 1,
                mod: w.revision,
                create: cur?.create ?? w.revision,
              });
            } else if (o.op === 'cas' || o.op === 'create') {
              const expect = o.op === 'create' ? 0 : cur ? cur.mod - 1 : 1;
              await assert.rejects(s.put(k, o.value, { prevModRevision: expect }), StoreConflictError);
            } else if (o.op === 'delete') {
              const d = await s.delete(k);
              assert.equal(d.deleted, cur ? 1 : 0);
              model.delete(k);
            } else {
              const under = [...model.keys()].filter((x) => x.startsWith(k));
              const d = await s.deletePrefix(k);
              assert.equal(d.deleted, under.length);
              for (const x of under) model.delete(x);
            }
          }
          const got = (await s.range(p)).kvs;
          const want: KeyValue[] = [...model.entries()]
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([key, m]) => ({
              key,
              value: m.value,
              createRevision: m.create,
              modRevision: m.mod,
              version: m.version,
              lease: 0,
            }));
          assert.deepEqual(got, want);
        }),
        { numRuns: options.modelRuns ?? 25 },
      );
    });
  });
}
