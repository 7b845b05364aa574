import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestFields } from './headers.ts';

test('requestFields: lower-case names, hop-by-hop left out, what the listener asks answered', () => {
  // prettier-ignore
  const f = requestFields([
    'Host', 'a.example',
    'Content-Length', '3',
    'Connection', 'keep-alive',
    'Keep-Alive', 'timeout=5',
    'X-Trace', 'abc',
    'Expect', '100-continue',
    'Upgrade', 'websocket',
  ]);
  assert.deepEqual(f.headers, { 'content-length': '3', 'x-trace': 'abc' });
  assert.equal(f.host, 'a.example');
  assert.equal(f.hosts, 1);
  assert.equal(f.expect, '100-continue');
  assert.equal(f.upgrade, 'websocket');
  assert.equal(f.contentLength, '3');
  assert.equal(f.chunked, false);
  assert.deepEqual(
    [...(f.names ?? [])],
    [
      ['host', 'Host'],
      ['content-length', 'Content-Length'],
      ['connection', 'Connection'],
      ['keep-alive', 'Keep-Alive'],
      ['x-trace', 'X-Trace'],
      ['expect', 'Expect'],
      ['upgrade', 'Upgrade'],
    ],
  );
});

test('requestFields: repeated lines as node:http keeps them, cookie joined, set-cookie a list', () => {
  // prettier-ignore
  const f = requestFields([
    'host', 'a', 'host', 'b',
    'content-length', '1', 'content-length', '2',
    'x-add', 'one', 'x-add', 'two', 'x-add', 'three',
    'cookie', 'a=1', 'cookie', 'b=2',
    'set-cookie', 's=1',
    'expect', '100-continue', 'expect', 'something-else',
  ]);
  assert.equal(f.host, 'a');
  assert.equal(f.hosts, 2);
  assert.equal(f.headers['content-length'], '1');
  assert.equal(f.contentLength, '1');
  assert.deepEqual(f.headers['x-add'], ['one', 'two', 'three']);
  assert.equal(f.headers.cookie, 'a=1; b=2');
  assert.deepEqual(f.headers['set-cookie'], ['s=1']);
  // A second expectation is not hidden behind the first: the listener refuses it (417).
  assert.equal(f.expect, '100-continue, something-else');
  assert.equal(f.names, undefined);
});

test('requestFields: headers named in Connection are dropped; te: trailers kept alone', () => {
  // prettier-ignore
  const f = requestFields([
    'host', 'a',
    'x-private', 'secret',
    'connection', 'X-Private, te',
    'te', 'trailers',
    'transfer-encoding', 'chunked',
    'x-kept', 'yes',
  ]);
  assert.deepEqual(f.headers, { te: 'trailers', 'x-kept': 'yes' });
  assert.equal(f.chunked, true);
  const twice = requestFields(['host', 'a', 'te', 'trailers', 'te', 'trailers']);
  assert.equal(twice.headers.te, undefined);
  const other = requestFields(['host', 'a', 'te', 'gzip']);
  assert.equal(other.headers.te, undefined);
  // A Connection header split over two lines names headers from both.
  const split = requestFields(['connection', 'x-a', 'x-a', '1', 'connection', 'x-b', 'x-b', '2', 'x-c', '3']);
  assert.deepEqual(split.headers, { 'x-c': '3' });
});
