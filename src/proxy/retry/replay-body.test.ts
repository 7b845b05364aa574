import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { takeWhole } from '../core/whole-body.ts';
import { ReplayBody } from './replay-body.ts';
import { readAll, wholeBody } from './test-support.ts';

test('first stream gets bytes before the source has ended (tee, no buffering)', async () => {
  const src = new PassThrough();
  const rb = new ReplayBody(src);
  const s = rb.stream();
  src.write('hello ');
  const first = await new Promise<Buffer>((resolve) => s.once('data', resolve));
  assert.equal(first.toString(), 'hello ');
  assert.equal(rb.ended, false);
  assert.equal(src.writableEnded, false);
  src.end('world');
  const rest = await readAll(s);
  assert.equal(rest.toString(), 'world');
  assert.equal(rb.ended, true);
  assert.equal(rb.replayable, true);
});

test('a finished body under the limit is replayed byte-identically, many times', async () => {
  const parts = [randomBytes(1000), randomBytes(20_000), randomBytes(7), randomBytes(30_000)];
  const whole = Buffer.concat(parts);
  const rb = new ReplayBody(Readable.from(parts));
  assert.deepEqual(await readAll(rb.stream()), whole);
  assert.equal(rb.replayable, true);
  assert.deepEqual(await readAll(rb.stream()), whole);
  assert.deepEqual(await readAll(rb.stream()), whole);
  assert.equal(rb.bytesRead, whole.length);
});

test('a body over the limit is passed through whole once but is not replayable', async () => {
  const parts = Array.from({ length: 5 }, () => randomBytes(16 * 1024)); // 80 KiB
  const whole = Buffer.concat(parts);
  const rb = new ReplayBody(Readable.from(parts), 64 * 1024);
  assert.deepEqual(await readAll(rb.stream()), whole);
  assert.equal(rb.overflowed, true);
  assert.equal(rb.replayable, false);
});

test('a body not read at all is replayable even while it is still streaming', async () => {
  const src = new PassThrough();
  const rb = new ReplayBody(src);
  const first = rb.stream(); // the try failed before reading (connect failure)
  assert.equal(rb.replayable, true);
  const second = rb.stream();
  assert.equal(first.destroyed, true);
  src.write('a');
  src.end('b');
  assert.equal((await readAll(second)).toString(), 'ab');
});

test('a body read in part but not finished is not replayable', async () => {
  const src = new PassThrough();
  const rb = new ReplayBody(src);
  const s = rb.stream();
  src.write('part');
  await new Promise((resolve) => s.once('data', resolve));
  assert.equal(rb.replayable, false);
  src.end();
});

test('kept bytes plus the rest: a replacement stream continues with live data', async () => {
  const src = new PassThrough();
  const rb = new ReplayBody(src);
  const s1 = rb.stream();
  src.write('abc');
  await new Promise((resolve) => s1.once('data', resolve));
  const s2 = rb.stream();
  src.end('def');
  assert.equal((await readAll(s2)).toString(), 'abcdef');
});

test('a source error reaches the current stream and makes the body unreplayable', async () => {
  const src = new PassThrough();
  const rb = new ReplayBody(src);
  const s = rb.stream();
  src.write('x');
  const failed = assert.rejects(readAll(s), /boom/);
  setImmediate(() => src.destroy(new Error('boom')));
  await failed;
  assert.equal(rb.replayable, false);
});

test('a whole source is taken whole by the first try, and kept: the next try replays it', async () => {
  const bytes = randomBytes(3000);
  const rb = new ReplayBody(wholeBody(bytes));
  const first = rb.stream();
  assert.deepEqual(takeWhole(first), bytes, 'the first try gets the body in one piece');
  assert.equal(rb.replayable, true);
  assert.equal(rb.bytesRead, bytes.length);
  // Its stream ends (its 'end' listeners run as for a read body).
  await new Promise((r) => first.once('end', r));
  assert.deepEqual(await readAll(rb.stream()), bytes, 'a retry sends the same bytes');
});

test('a whole source over the limit is taken once and is not replayable; a read one is not taken', async () => {
  const big = new ReplayBody(wholeBody(randomBytes(100)), 10);
  assert.equal(takeWhole(big.stream())?.length, 100);
  assert.equal(big.replayable, false);
  // A source that is still streaming is read as a stream, not taken.
  const src = new PassThrough();
  const rb = new ReplayBody(src);
  const s = rb.stream();
  assert.equal(takeWhole(s), undefined);
  src.end('late');
  assert.equal((await readAll(s)).toString(), 'late');
});
