import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough, Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { relay } from './relay.ts';

/** A writable that takes one chunk per `release()` (highWaterMark 1 byte: every write is "full"). */
function slowSink(): { sink: Writable; got: Buffer[]; release: () => void; ended: Promise<unknown> } {
  const got: Buffer[] = [];
  const waiting: (() => void)[] = [];
  const sink = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      waiting.push(cb);
    },
  });
  return { sink, got, release: () => waiting.shift()?.(), ended: once(sink, 'finish') };
}

test('copies every chunk in order and ends the destination', async () => {
  const dest = new PassThrough();
  const chunks: Buffer[] = [];
  dest.on('data', (c: Buffer) => chunks.push(c));
  relay(Readable.from([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]), dest);
  await once(dest, 'end');
  assert.equal(Buffer.concat(chunks).toString(), 'abc');
});

test('backpressure: the source pauses until the destination drains', async () => {
  const src = new PassThrough();
  const { sink, got, release, ended } = slowSink();
  relay(src, sink);
  src.write('1');
  src.write('2');
  src.write('3');
  src.end();
  await new Promise((r) => setImmediate(r));
  assert.equal(got.length, 1, 'one chunk taken, the rest held');
  assert.equal(src.isPaused(), true);
  for (let i = 0; i < 3; i++) {
    release();
    await new Promise((r) => setImmediate(r));
  }
  await ended;
  assert.equal(Buffer.concat(got).toString(), '123');
});

test('stop(): nothing more is written and the destination is not ended', async () => {
  const src = new PassThrough();
  const dest = new PassThrough();
  const chunks: Buffer[] = [];
  dest.on('data', (c: Buffer) => chunks.push(c));
  const copy = relay(src, dest);
  src.write('kept');
  await new Promise((r) => setImmediate(r));
  copy.stop();
  src.resume();
  src.end('dropped');
  await once(src, 'end');
  assert.equal(Buffer.concat(chunks).toString(), 'kept');
  assert.equal(dest.writableEnded, false);
  assert.equal(src.listenerCount('data'), 0);
});

test('stop() while waiting for drain removes the drain listener', async () => {
  const src = new PassThrough();
  const { sink } = slowSink();
  const copy = relay(src, sink);
  src.write('x');
  src.write('y');
  await new Promise((r) => setImmediate(r));
  assert.equal(sink.listenerCount('drain'), 1);
  copy.stop();
  assert.equal(sink.listenerCount('drain'), 0);
});
