import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEtcdUrl } from '../../src/store/open-store.ts';
import { StoreError } from '../../src/store/store.ts';

test('parseEtcdUrl: one or several hosts, default port, TLS scheme', () => {
  assert.deepEqual(parseEtcdUrl('etcd://10.0.0.1:2379'), ['http://10.0.0.1:2379']);
  assert.deepEqual(parseEtcdUrl('etcd://a:2379,b:2380, c:2381/'), [
    'http://a:2379',
    'http://b:2380',
    'http://c:2381',
  ]);
  assert.deepEqual(parseEtcdUrl('etcd://etcd-0'), ['http://etcd-0:2379']);
  assert.deepEqual(parseEtcdUrl('etcds://[::1]:2379'), ['https://[::1]:2379']);
});

test('parseEtcdUrl: bad URLs are refused with the URL in the message', () => {
  for (const bad of [
    'http://a:2379',
    'etcd://',
    'etcd://a:2379,,b:2379',
    'etcd://a:2379/path',
    'etcd://a:notaport',
    'redis://a',
  ]) {
    assert.throws(
      () => parseEtcdUrl(bad),
      (err: unknown) =>
        err instanceof StoreError && err.code === 'HEXMESH_ERR_STORE_URL' && err.message.includes(bad),
      bad,
    );
  }
});
