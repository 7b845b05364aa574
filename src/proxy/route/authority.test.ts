import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAuthority } from './route-table.ts';

describe('parseAuthority', () => {
  const ok: [string, object][] = [
    ['reviews', { name: 'reviews', namespace: 'shop' }],
    ['reviews:9080', { name: 'reviews', namespace: 'shop', port: 9080 }],
    ['reviews.prod', { name: 'reviews', namespace: 'prod' }],
    ['reviews.prod:9080', { name: 'reviews', namespace: 'prod', port: 9080 }],
    ['reviews.prod.svc', { name: 'reviews', namespace: 'prod' }],
    ['reviews.prod.svc:80', { name: 'reviews', namespace: 'prod', port: 80 }],
    ['reviews.prod.svc.cluster.local', { name: 'reviews', namespace: 'prod' }],
    ['reviews.prod.svc.cluster.local:9080', { name: 'reviews', namespace: 'prod', port: 9080 }],
    ['reviews.prod.svc.cluster.local.', { name: 'reviews', namespace: 'prod' }],
    ['Reviews.PROD', { name: 'reviews', namespace: 'prod' }],
    ['my-svc-2', { name: 'my-svc-2', namespace: 'shop' }],
  ];
  for (const [authority, want] of ok)
    it(`${authority} → ${JSON.stringify(want)}`, () =>
      assert.deepEqual(parseAuthority(authority, 'shop'), want));

  const bad = [
    '',
    '[::1]:8080',
    '[::1]',
    '::1',
    'fe80::1:80',
    '10.0.0.1',
    '10.0.0.1:80',
    'reviews:',
    'reviews:0',
    'reviews:65536',
    'reviews:80x',
    'reviews.prod.other',
    'reviews.prod.svc.cluster',
    'reviews.prod.svc.example.com',
    'a.b.c.d.e.f',
    'revi_ews',
    '-reviews',
    'reviews..prod',
    'user@reviews',
    'reviews/x',
  ];
  for (const authority of bad)
    it(`${JSON.stringify(authority)} → undefined`, () =>
      assert.equal(parseAuthority(authority, 'shop'), undefined));
});
