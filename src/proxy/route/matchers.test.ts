import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { headersMatch, compileHeaderMatch, normalizePrefix, parseQuery, prefixMatches } from './matchers.ts';

/** Straightforward reference: compare `/`-separated elements, ignoring trailing slashes of the prefix. */
function referencePrefixMatch(prefix: string, path: string): boolean {
  const pre = prefix.split('/');
  while (pre.length > 1 && pre[pre.length - 1] === '') pre.pop();
  const segs = path.split('/');
  if (pre.length > segs.length) return false;
  for (let i = 0; i < pre.length; i++) if (pre[i] !== segs[i]) return false;
  return true;
}

describe('element-wise prefix matcher', () => {
  it('agrees with the reference implementation (property)', () => {
    // Small alphabets so that prefixes and paths often share elements.
    const seg = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '/'), maxLength: 4 });
    const absolute = fc.array(seg, { maxLength: 4 }).map((parts) => '/' + parts.join('/'));
    fc.assert(
      fc.property(absolute, absolute, fc.boolean(), (prefix, path, derive) => {
        // Half the time make the path an extension of the prefix so matches are common.
        const p = derive ? prefix + path : path;
        assert.equal(
          prefixMatches(normalizePrefix(prefix), p),
          referencePrefixMatch(prefix, p),
          `${prefix} vs ${p}`,
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('examples from the Gateway API spec', () => {
    const m = (prefix: string, path: string) => prefixMatches(normalizePrefix(prefix), path);
    assert.ok(m('/abc', '/abc'));
    assert.ok(m('/abc', '/abc/'));
    assert.ok(m('/abc', '/abc/def'));
    assert.ok(!m('/abc', '/abcd'));
    assert.ok(m('/abc/', '/abc'));
    assert.ok(m('/', '/anything'));
    assert.ok(!m('/abc', '/ab'));
    assert.ok(!m('/abc', '/ABC'));
  });
});

describe('parseQuery', () => {
  const wanted = new Set(['a', 'b c', 'empty', 'flag']);
  it('keeps first values of wanted names, decoded', () => {
    const q = parseQuery('/p?x=1&a=1&a=2&b+c=d%2Fe&empty=&flag&&', wanted);
    assert.deepEqual(
      [...q],
      [
        ['a', '1'],
        ['b c', 'd/e'],
        ['empty', ''],
        ['flag', ''],
      ],
    );
  });
  it('no query, empty query and malformed escapes', () => {
    assert.equal(parseQuery('/p', wanted).size, 0);
    assert.equal(parseQuery('/p?', wanted).size, 0);
    assert.equal(parseQuery('/p?a=%zz', wanted).get('a'), '%zz');
  });
});

describe('headersMatch', () => {
  it('joins repeated headers and requires presence', () => {
    const m = [compileHeaderMatch({ type: 'Exact', name: 'X-Tag', value: 'a, b' })];
    assert.ok(headersMatch(m, { 'x-tag': ['a', 'b'] }));
    assert.ok(!headersMatch(m, { 'x-tag': 'a' }));
    assert.ok(!headersMatch(m, {}));
    const empty = [compileHeaderMatch({ type: 'Exact', name: 'x-e', value: '' })];
    assert.ok(headersMatch(empty, { 'x-e': '' }));
    assert.ok(!headersMatch(empty, {}));
  });
});
