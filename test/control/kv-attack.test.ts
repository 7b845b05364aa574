/**
 * Hostile KV requests against a real control plane, on the embedded store and on a real etcd:
 * keys are opaque strings confined to the KV space (`..`, `%2F`, NUL are key bytes, never
 * a way out), long keys and huge values are bounded, a prefix delete of thousands of keys is
 * one revision, check-and-set under concurrent writers has exactly one winner, and a value
 * that is not UTF-8 is refused instead of silently rewritten.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { EtcdCluster, etcdMissingReason } from '../support/etcd-cluster.ts';
import { EtcdStore } from '../../src/store/etcd-store.ts';
import { KEYS } from '../../src/store/store.ts';
import { call, service, startCp, type TestCp } from './helpers.ts';

/** A request sent exactly as written: fetch would resolve `..` and re-encode the path. */
function raw(
  url: string,
  method: string,
  path: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode!, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function everythingOutsideKv(t: TestCp): Promise<string[]> {
  const r = await t.store.range('/hexmesh/');
  return r.kvs
    .map((kv) => kv.key)
    .filter((k) => !k.startsWith(KEYS.kv) && !k.startsWith('/hexmesh/leader/'))
    .sort();
}

function kvSuite(backend: string, open: () => Promise<{ t: TestCp; close(): Promise<void> }>, skip?: string) {
  test(
    `${backend}: KV keys are opaque strings inside the KV space; .., %2F and NUL never reach other state`,
    { skip },
    async () => {
      const { t, close } = await open();
      try {
        assert.equal(
          (await call(t.url, 'PUT', '/v1/resources/Service/default/web', service('web'))).status,
          201,
        );
        const reg = await call(t.url, 'PUT', '/v1/catalog/register', {
          id: 'w1',
          service: 'web',
          address: '127.0.0.1',
          port: 9,
        });
        assert.equal(reg.status, 200);
        const outside = await everythingOutsideKv(t);
        assert.ok(outside.length >= 2, JSON.stringify(outside));

        const sneaky = [
          ['/v1/kv/../resources/Service/default/web', '../resources/Service/default/web'],
          ['/v1/kv/..%2F..%2Fresources%2FService%2Fdefault%2Fweb', '../../resources/Service/default/web'],
          ['/v1/kv/a/./b/../c', 'a/./b/../c'],
          ['/v1/kv/nul%00byte', 'nul\u0000byte'],
          ['/v1/kv/%2Fhexmesh%2Finstances%2Fdefault%2Fweb%2Fw1', '/hexmesh/instances/default/web/w1'],
        ];
        for (const [path, key] of sneaky) {
          const put = await raw(t.url, 'PUT', path, 'x');
          assert.equal(put.status, 200, `${path}: ${JSON.stringify(put.body)}`);
          const got = await raw(t.url, 'GET', path);
          assert.deepEqual([got.status, got.body.key, got.body.value], [200, key, 'x'], path);
        }
        assert.deepEqual(await everythingOutsideKv(t), outside, 'nothing outside the KV space was written');
        assert.equal((await t.store.get(KEYS.kv + 'nul\u0000byte'))?.value, 'x');
        assert.equal((await t.store.get(KEYS.kv + 'nul'))?.value, undefined, 'NUL does not cut the key');

        // Deletes by prefix, however spelled, stay inside the KV space.
        for (const path of ['/v1/kv/..?recurse=1', '/v1/kv/..%2F..%2F?recurse=1', '/v1/kv/?recurse=1'])
          assert.equal((await raw(t.url, 'DELETE', path)).status, 200, path);
        assert.deepEqual((await t.store.range(KEYS.kv)).kvs, [], 'the KV space is empty');
        assert.deepEqual(await everythingOutsideKv(t), outside, 'resources and instances survive');
        assert.equal((await call(t.url, 'GET', '/v1/resources/Service/default/web')).status, 200);

        // A malformed escape is a 400, not a key.
        assert.equal((await raw(t.url, 'PUT', '/v1/kv/bad%FF', 'x')).status, 400);
        assert.equal((await raw(t.url, 'PUT', '/v1/kv/bad%zz', 'x')).status, 400);
      } finally {
        await close();
      }
    },
  );

  test(`${backend}: long keys, huge values and many keys are bounded`, { skip }, async () => {
    const { t, close } = await open();
    try {
      const long = 'k/' + 'x'.repeat(8000);
      assert.equal((await raw(t.url, 'PUT', `/v1/kv/${long}`, 'v')).status, 200);
      assert.equal((await raw(t.url, 'GET', `/v1/kv/${long}`)).body.key, long);
      // Past node's header limit (16 KiB): refused by the HTTP server, and it keeps serving.
      assert.equal((await raw(t.url, 'PUT', `/v1/kv/${'y'.repeat(20_000)}`, 'v')).status, 431);

      const limit = 1024 * 1024;
      const max = Buffer.alloc(limit, 'a');
      assert.equal((await raw(t.url, 'PUT', '/v1/kv/big', max)).status, 200);
      assert.equal((await call(t.url, 'GET', '/v1/kv/big')).body.value.length, limit);
      const over = await raw(t.url, 'PUT', '/v1/kv/bigger', Buffer.alloc(limit + 1, 'a'));
      assert.equal(over.status, 413);
      assert.equal(over.body.error.code, 'HEXMESH_ERR_BODY_TOO_LARGE');
      // Chunked, so no Content-Length says it in advance.
      const chunked = await raw(t.url, 'PUT', '/v1/kv/bigger', Buffer.alloc(limit + 1, 'a'), {
        'transfer-encoding': 'chunked',
      });
      assert.equal(chunked.status, 413);
      assert.equal((await call(t.url, 'GET', '/v1/kv/bigger')).status, 404, 'nothing stored');

      const n = 2000;
      for (let i = 0; i < n; i += 100)
        await Promise.all(
          Array.from({ length: 100 }, (_, j) =>
            call(t.url, 'PUT', `/v1/kv/many/${String(i + j).padStart(5, '0')}`, 'v'),
          ),
        );
      const keys = await call(t.url, 'GET', '/v1/kv/many/?keys=1');
      assert.equal(keys.body.length, n);
      const before = keys.index!;
      const del = await call(t.url, 'DELETE', '/v1/kv/many/?recurse=1');
      assert.deepEqual(del.body, { ok: true, deleted: n });
      assert.equal(del.index, before + 1, 'one revision for the whole prefix');
    } finally {
      await close();
    }
  });

  test(`${backend}: check-and-set under concurrent writers: exactly one wins`, { skip }, async () => {
    const { t, close } = await open();
    try {
      const writers = 16;
      for (let round = 0; round < 5; round++) {
        const key = `/v1/kv/race/${round}`;
        // Create-only: one of the racers creates the key.
        const create = await Promise.all(
          Array.from({ length: writers }, (_, w) => call(t.url, 'PUT', `${key}?cas=0`, `c${w}`)),
        );
        const created = create.filter((r) => r.body.ok);
        assert.equal(created.length, 1, JSON.stringify(create.map((r) => r.body)));
        const rev = created[0].body.modRevision;
        for (const r of create.filter((x) => !x.body.ok)) assert.equal(r.body.modRevision, rev);
        // Update at one revision: one winner, whose value is stored.
        const update = await Promise.all(
          Array.from({ length: writers }, (_, w) => call(t.url, 'PUT', `${key}?cas=${rev}`, `u${w}`)),
        );
        const won = update.flatMap((r, w) => (r.body.ok ? [w] : []));
        assert.equal(won.length, 1, JSON.stringify(update.map((r) => r.body)));
        const now = await call(t.url, 'GET', key);
        assert.equal(now.body.value, `u${won[0]}`);
        // Delete at one revision: one deletes, the others are told no.
        const del = await Promise.all(
          Array.from({ length: writers }, () => call(t.url, 'DELETE', `${key}?cas=${now.body.modRevision}`)),
        );
        assert.equal(del.filter((r) => r.body.ok).length, 1, JSON.stringify(del.map((r) => r.body)));
      }
    } finally {
      await close();
    }
  });

  test(`${backend}: a value that is not UTF-8 is refused, never stored rewritten`, { skip }, async () => {
    const { t, close } = await open();
    try {
      const binary = Buffer.from([0x68, 0x69, 0xff, 0xfe, 0x00, 0x41]);
      const r = await raw(t.url, 'PUT', '/v1/kv/bin', binary);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'HEXMESH_ERR_BAD_REQUEST');
      assert.match(r.body.error.message, /not valid UTF-8 \(byte 2\)/);
      assert.equal((await call(t.url, 'GET', '/v1/kv/bin')).status, 404, 'nothing stored');
      // A truncated multi-byte sequence at the end is not UTF-8 either.
      assert.equal((await raw(t.url, 'PUT', '/v1/kv/bin', Buffer.from([0x61, 0xe2, 0x82]))).status, 400);
      // UTF-8 of every width, NUL included, round-trips byte for byte.
      const text = 'a\u0000é€𝄞 ✓';
      assert.equal((await raw(t.url, 'PUT', '/v1/kv/text', Buffer.from(text, 'utf8'))).status, 200);
      assert.equal((await call(t.url, 'GET', '/v1/kv/text')).body.value, text);
    } finally {
      await close();
    }
  });
}

kvSuite('embedded', async () => {
  const t = await startCp();
  return { t, close: () => t.close() };
});

const skip = etcdMissingReason();
kvSuite(
  'etcd',
  async () => {
    const cluster = await EtcdCluster.start(1);
    const store = await EtcdStore.connect(cluster.endpoints);
    const t = await startCp({ store });
    return {
      t,
      close: async () => {
        await t.close();
        await store.close();
        await cluster.stop();
      },
    };
  },
  skip,
);
