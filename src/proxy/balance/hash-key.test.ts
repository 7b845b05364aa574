import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cookieValue, hashKeyExtractor, sourceIp } from './hash-key.ts';
import { hash32 } from './hash.ts';

describe('hash key extraction', () => {
  it('header: by lower-cased name, first value of a list, undefined when absent', () => {
    const key = hashKeyExtractor({ header: 'X-User-ID' });
    assert.equal(key({ 'x-user-id': 'alice' }, '10.0.0.1'), 'alice');
    assert.equal(key({ 'x-user-id': ['bob', 'carol'] }, '10.0.0.1'), 'bob');
    assert.equal(key({}, '10.0.0.1'), undefined);
  });

  it('cookie: by name across one or several cookie headers', () => {
    const key = hashKeyExtractor({ cookie: 'session' });
    assert.equal(key({ cookie: 'a=1; session=xyz; b=2' }, ''), 'xyz');
    assert.equal(key({ cookie: ['a=1', 'session=h2'] }, ''), 'h2');
    assert.equal(key({ cookie: 'sessionid=nope; xsession=no' }, ''), undefined);
    assert.equal(key({}, ''), undefined);
  });

  it('cookie parsing edge cases', () => {
    assert.equal(cookieValue('session="quoted"', 'session'), 'quoted');
    assert.equal(cookieValue('  session = spaced ;x=1', 'session'), 'spaced');
    assert.equal(cookieValue('session=', 'session'), '');
    assert.equal(cookieValue('session=a=b', 'session'), 'a=b');
    assert.equal(cookieValue('flag; session=1', 'session'), '1');
    assert.equal(cookieValue('session=first; session=second', 'session'), 'first');
    assert.equal(cookieValue(';;', 'session'), undefined);
    assert.equal(cookieValue('', 'session'), undefined);
  });

  it('cookie parsing agrees with a split-based reference on generated headers', () => {
    const token = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/);
    const value = fc.stringMatching(/^[A-Za-z0-9=_.-]{0,10}$/);
    fc.assert(
      fc.property(fc.array(fc.tuple(token, value), { maxLength: 8 }), token, (pairs, name) => {
        const line = pairs.map(([k, v]) => `${k}=${v}`).join('; ');
        const reference = pairs.find(([k]) => k === name)?.[1];
        assert.equal(cookieValue(line, name), reference);
      }),
      { numRuns: 300 },
    );
  });

  it('source IP: the peer address, IPv4-mapped IPv6 folded to IPv4', () => {
    const key = hashKeyExtractor({ sourceIp: true });
    assert.equal(key({}, '10.1.2.3'), '10.1.2.3');
    assert.equal(key({}, '::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(key({}, '2001:db8::1'), '2001:db8::1');
    assert.equal(sourceIp(''), undefined);
  });

  it('no hashOn: no key', () => {
    assert.equal(hashKeyExtractor(undefined)({ 'x-user': 'a' }, '10.0.0.1'), undefined);
  });
});

describe('hash32', () => {
  it('is deterministic, 32-bit unsigned, seed-dependent', () => {
    assert.equal(hash32('abc'), hash32('abc'));
    assert.notEqual(hash32('abc'), hash32('abd'));
    assert.notEqual(hash32('abc', 1), hash32('abc', 2));
    const h = hash32('x');
    assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
  });

  it('spreads sequential keys evenly over buckets, low bits included', () => {
    const buckets = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) buckets[hash32(`user-${i}`) % 16]++;
    for (const b of buckets) assert.ok(b > 850 && b < 1150, `bucket sizes ${buckets}`);
  });
});
