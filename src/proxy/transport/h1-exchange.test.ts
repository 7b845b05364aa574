/**
 * The exchange's states between the response head and its delivery (h1-exchange.ts): the hop
 * makes a response inside the parser's read and settles the promise once the read is parsed,
 * so a cancellation can land in between (a try timeout, the downstream gone). Timing inside a
 * parser read cannot be arranged with real sockets, so the connection here is a recorder of
 * the two calls a body makes on it; the socket paths are in h1-transport.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cancel } from '../core/cancel.ts';
import type { MeshResponse } from '../core/dispatch.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { fakeRequest, readAll } from '../retry/test-support.ts';
import type { H1Connection } from './h1-connection.ts';
import { H1Exchange, type ExchangeDispatcher } from './h1-exchange.ts';

interface Recorded {
  aborted: number;
  resumed: number;
}

function exchange(cancel: Cancel): {
  ex: H1Exchange;
  conn: Recorded;
  result: Promise<MeshResponse>;
} {
  const conn: Recorded = { aborted: 0, resumed: 0 };
  const stub = {
    abortBody: () => void conn.aborted++,
    resumeBody: () => void conn.resumed++,
  } as unknown as H1Connection;
  const pool: ExchangeDispatcher = { dispatch: () => {}, unqueue: () => false };
  let ex!: H1Exchange;
  const result = new Promise<MeshResponse>((resolve, reject) => {
    ex = new H1Exchange(pool, fakeRequest(), cancel, '127.0.0.1:1', resolve, reject);
  });
  ex.attach(stub);
  return { ex, conn, result };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

test('an abort between respond and deliver rejects with its reason and cuts the body', async () => {
  const cancel = new Cancel();
  const { ex, conn, result } = exchange(cancel);
  const body = ex.respond(200, {});
  body.add(Buffer.from('part of the body'));
  const reason = new HexmeshError('HEXMESH_ERR_TIMEOUT', 'per-try timeout');
  cancel.abort(reason);
  ex.deliver(); // the parser's read ends: nothing left to deliver
  await assert.rejects(result, (err) => err === reason);
  await flush();
  assert.ok(body.destroyed, 'the held body is destroyed');
  assert.equal(conn.aborted, 1, 'the rest of the response is not read: the connection closes');
});

test('an abort after a whole body was made but before delivery still rejects; the connection stays usable', async () => {
  const cancel = new Cancel();
  const { ex, conn, result } = exchange(cancel);
  const body = ex.respond(200, { 'content-length': '2' });
  body.add(Buffer.from('ok'));
  body.finish();
  cancel.abort(new HexmeshError('HEXMESH_ERR_TIMEOUT', 'request timeout'));
  ex.deliver();
  await assert.rejects(result, /request timeout/);
  await flush();
  assert.ok(body.destroyed);
  assert.equal(conn.aborted, 0, 'the response was read to its end: nothing to cut');
});

test('an abort after delivery fails the body, not the settled promise', async () => {
  const cancel = new Cancel();
  const { ex, conn, result } = exchange(cancel);
  const body = ex.respond(200, {});
  body.add(Buffer.from('first'));
  ex.deliver();
  const res = await result;
  assert.equal(res.body, body);
  body.stream();
  const read = readAll(body);
  cancel.abort(new HexmeshError('HEXMESH_ERR_TIMEOUT', 'request timeout'));
  await assert.rejects(read, /request timeout/);
  assert.equal(conn.aborted, 1);
});

test('delivered without an abort: held chunks come first, the signal listener goes with the body', async () => {
  const cancel = new Cancel();
  const { ex, result } = exchange(cancel);
  const body = ex.respond(200, {});
  body.add(Buffer.from('a'));
  body.add(Buffer.from('b'));
  ex.deliver();
  ex.deliver(); // once only
  const res = await result;
  body.stream();
  body.add(Buffer.from('c'));
  body.finish();
  assert.equal((await readAll(res.body)).toString(), 'abc');
  cancel.abort(new Error('late'));
  assert.ok(!body.errored, 'an abort after the body ended changes nothing');
});
