import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { normalizePath } from './normalize-path.ts';

/** [input, normalised path | 'reject'] — every bypass of the security issue and its neighbours. */
const TABLE: [string, string][] = [
  ['/admin', '/admin'],
  ['/admin/../admin', '/admin'],
  ['/public/../admin', '/admin'],
  ['//admin', '/admin'],
  ['/a//b///c', '/a/b/c'],
  ['/%61dmin', '/admin'],
  ['/%61%64%6D%69%6E', '/admin'],
  ['/ADMIN', '/ADMIN'], // case is kept: paths are case-sensitive
  ['/admin%2f', 'reject'],
  ['/admin%2F..%2Fx', 'reject'],
  ['/admin%5c', 'reject'],
  ['/admin\\', 'reject'],
  ['/public\\..\\admin', 'reject'],
  ['/admin;x', 'reject'],
  ['/public/..;/admin', 'reject'],
  ['/%2561dmin', '/%2561dmin'], // decoded once: %25 stays encoded, never becomes /admin
  ['/%252e%252e/admin', '/%252e%252e/admin'],
  ['/./admin', '/admin'],
  ['/admin/.', '/admin/'],
  ['/admin/..', '/'],
  ['/admin/%2e', '/admin/'],
  ['/%2e%2e/admin', '/admin'],
  ['/%2E./admin', '/admin'],
  ['/../../admin', '/admin'], // never above the root
  ['/admin%00', 'reject'],
  ['/admin\u0000', 'reject'],
  ['/%C0%AF', 'reject'], // overlong UTF-8 for /
  ['/%C0%AE%C0%AE/admin', 'reject'], // overlong UTF-8 for .
  ['/%E0%80%AF', 'reject'],
  ['/%c3%a9t%c3%a9', '/%C3%A9t%C3%A9'], // valid UTF-8 kept encoded, hex upper-cased
  ['/caf\u00e9', 'reject'], // raw non-ASCII
  ['/a%4', 'reject'],
  ['/a%', 'reject'],
  ['/a%zz', 'reject'],
  ['/a#frag', 'reject'],
  ['/a%7E%5F%2D', '/a~_-'],
  ['/a%3Bb', '/a%3Bb'], // an encoded ; is data, not a path parameter
  ['/a/b/', '/a/b/'],
  ['/', '/'],
  ['/admin?x=/../y;z', '/admin'],
  ['admin', 'reject'],
];

test('normalizePath: table of bypass attempts', () => {
  for (const [input, want] of TABLE) {
    const r = normalizePath(input);
    if (want === 'reject')
      assert.equal(r.ok, false, `${JSON.stringify(input)} should be rejected, got ${JSON.stringify(r)}`);
    else {
      assert.ok(r.ok, `${JSON.stringify(input)} rejected: ${JSON.stringify(r)}`);
      assert.equal(r.path, want, JSON.stringify(input));
    }
  }
});

test('normalizePath: the query is kept as sent', () => {
  const r = normalizePath('/a/../b?x=%2F&y=..');
  assert.deepEqual(r, { ok: true, path: '/b', query: '?x=%2F&y=..' });
});

test('normalizePath: allowEncodedSlashes keeps %2F and \\ as data', () => {
  assert.deepEqual(normalizePath('/a%2fb/../c', { allowEncodedSlashes: true }), {
    ok: true,
    path: '/c',
    query: '',
  });
  const r = normalizePath('/admin%2Fx', { allowEncodedSlashes: true });
  assert.ok(r.ok && r.path === '/admin%2Fx');
  const b = normalizePath('/a\\b', { allowEncodedSlashes: true });
  assert.ok(b.ok && b.path === '/a\\b');
});

test('normalizePath: a plain path comes back as the same string', () => {
  const p = '/api/v1/orders/42';
  const r = normalizePath(p);
  assert.ok(r.ok);
  assert.equal(r.path, p);
});

// Paths built from the characters that matter: separators, dots, escapes, plain letters.
const piece = fc.constantFrom(
  '/',
  '//',
  '.',
  '..',
  '/./',
  '/../',
  'a',
  'b',
  'admin',
  '%2e',
  '%2E',
  '%61',
  '%25',
  '%41',
  '%7e',
  '%3B',
  '%c3%a9',
  '%2f',
  '\\',
  ';',
  '%',
  '%0',
  '~',
  '-',
  '_',
  'x.y',
);
const pathArb = fc.array(piece, { maxLength: 12 }).map((xs) => '/' + xs.join(''));

test('property: normalisation is idempotent', () => {
  for (const allowEncodedSlashes of [false, true])
    fc.assert(
      fc.property(pathArb, (p) => {
        const once = normalizePath(p, { allowEncodedSlashes });
        if (!once.ok) return;
        const twice = normalizePath(once.path, { allowEncodedSlashes });
        assert.ok(twice.ok, `normalised ${once.path} rejected: ${JSON.stringify(twice)}`);
        assert.equal(twice.path, once.path);
      }),
      { numRuns: 2000 },
    );
});

test('property: output has no dot segments, no //, starts with /, and no escape of an unreserved char', () => {
  fc.assert(
    fc.property(pathArb, (p) => {
      const r = normalizePath(p);
      if (!r.ok) return;
      assert.ok(r.path.startsWith('/'));
      assert.ok(!r.path.includes('//'), r.path);
      for (const seg of r.path.split('/')) assert.ok(seg !== '.' && seg !== '..', r.path);
      assert.ok(!/%(2[DEde]|3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|7[Ee])/.test(r.path), r.path);
      for (const ch of ['\\', ';', '#', '\u0000']) assert.ok(!r.path.includes(ch), r.path);
    }),
    { numRuns: 2000 },
  );
});

test('property: the decoded forms of the same path normalise alike', () => {
  // Encoding any unreserved character never changes the result.
  const plain = fc.stringMatching(/^(\/[a-z0-9._~-]{0,6}){1,5}$/);
  fc.assert(
    fc.property(plain, fc.infiniteStream(fc.boolean()), (p, enc) => {
      let mixed = '';
      for (const ch of p)
        mixed += ch !== '/' && enc.next().value ? '%' + ch.charCodeAt(0).toString(16).toUpperCase() : ch;
      const a = normalizePath(p);
      const b = normalizePath(mixed);
      assert.deepEqual(a, b, `${p} vs ${mixed}`);
    }),
    { numRuns: 1000 },
  );
});
