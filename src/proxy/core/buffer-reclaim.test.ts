import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { RECLAIM_BYTES, reclaimWhileStreaming } from './buffer-reclaim.ts';

test('a body announced small is not watched', () => {
  const body = new PassThrough();
  reclaimWhileStreaming(body, '1024');
  assert.equal(body.listenerCount('data'), 0);
});

test('a large body relays every byte in order while GCs run under it', async () => {
  const chunk = Buffer.alloc(64 * 1024);
  const n = Math.ceil((3 * RECLAIM_BYTES) / chunk.length);
  let i = 0;
  const body = new Readable({
    read() {
      if (i === n) return void this.push(null);
      const c = Buffer.from(chunk);
      c.writeUInt32BE(i++, 0);
      this.push(c);
    },
  });
  const out = new PassThrough();
  body.pipe(out);
  reclaimWhileStreaming(body, undefined);
  assert.equal(body.listenerCount('data'), 2);
  let seen = 0;
  for await (const c of out) {
    // Chunks may merge in the PassThrough; check the sequence number of each 64 KiB block.
    for (let off = 0; off < (c as Buffer).length; off += chunk.length)
      assert.equal((c as Buffer).readUInt32BE(off), seen++);
  }
  assert.equal(seen, n);
});

test('a body not flowing yet (a request body before the transport reads it) is not started, and is watched once it flows', async () => {
  const body = new PassThrough();
  body.write(Buffer.alloc(1024, 1));
  reclaimWhileStreaming(body, undefined);
  await new Promise((r) => setImmediate(r));
  assert.equal(body.listenerCount('data'), 0);
  assert.notEqual(body.readableFlowing, true, 'the watch must not start the flow');
  const got: Buffer[] = [];
  body.on('data', (c: Buffer) => got.push(c));
  body.end(Buffer.alloc(1024, 2));
  await new Promise((r) => body.once('end', r));
  assert.equal(body.listenerCount('data'), 2, 'the consumer and the watch');
  assert.equal(Buffer.concat(got).length, 2048, 'no byte lost');
});
