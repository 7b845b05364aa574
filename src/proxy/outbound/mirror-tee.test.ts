import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { MAX_MIRROR_LAG, teeBody } from './mirror-tee.ts';

const read = async (r: Readable): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

test('every copy of a small body gets all of it (issue 12: gRPC mirrors)', async () => {
  const { primary, copies } = teeBody(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), 2);
  const [a, b, c] = await Promise.all([read(primary), read(copies[0]), read(copies[1])]);
  assert.equal(a.toString(), 'abcd');
  assert.equal(b.toString(), 'abcd');
  assert.equal(c.toString(), 'abcd');
});

test('a copy nobody reads never holds up the real body: it is dropped past the lag limit', async () => {
  const chunk = Buffer.alloc(16 * 1024, 1);
  const n = Math.ceil((4 * MAX_MIRROR_LAG) / chunk.length);
  const { primary, copies } = teeBody(Readable.from(Array.from({ length: n }, () => chunk)), 1);
  const body = await read(primary);
  assert.equal(body.length, n * chunk.length);
  assert.ok(copies[0].destroyed, 'the unread copy was cut off');
});
