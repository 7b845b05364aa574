import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncResource, executionAsyncId } from 'node:async_hooks';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { installLeanAsyncBind } from './lean-async-bind.ts';

const installed = installLeanAsyncBind();

test('installed on Node 20 only', () => {
  assert.equal(installed, process.versions.node.startsWith('20.'));
});

test('a bound function runs in the resource scope, keeps this rules, length and arguments', () => {
  const r = new AsyncResource('T');
  function f(this: unknown, a: number, b: number): [unknown, number, number] {
    return [this, executionAsyncId(), a + b];
  }
  const bound = r.bind(f);
  assert.equal(bound.length, 2);
  const self = { k: 1 };
  const [that, id, sum] = bound.call(self, 2, 3);
  assert.equal(that, self, 'without thisArg, this is the caller’s');
  assert.equal(id, r.asyncId());
  assert.equal(sum, 5);
  // Node's bind takes a thisArg too (@types/node 20 declares one parameter).
  const bindWith = r.bind as unknown as (fn: typeof f, thisArg: unknown) => typeof f;
  const withThis = bindWith.call(r, f, 'fixed');
  assert.equal(withThis.call(self, 1, 1)[0], 'fixed');
  assert.equal(withThis.length, 2);
});

test('the deprecated asyncResource accessor still reads, writes and warns (DEP0172)', async () => {
  const r = new AsyncResource('T');
  const bound = r.bind(() => 1) as (() => number) & { asyncResource: AsyncResource };
  const warned = once(process, 'warning');
  assert.equal(bound.asyncResource, r);
  const [w] = (await warned) as [Error & { code?: string }];
  assert.equal(w.code, 'DEP0172');
  const other = new AsyncResource('U');
  bound.asyncResource = other;
  assert.equal(bound.asyncResource, other);
  assert.ok(Object.keys(bound).includes('asyncResource'), 'enumerable, as Node defines it');
});

test('a non-function is refused as Node refuses it', () => {
  const r = new AsyncResource('T');
  assert.throws(() => r.bind(42 as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('the HTTP/2 client (which binds every request) still works, before and after connect', async () => {
  const server = http2.createServer();
  server.on('stream', (s, h) =>
    s.respond({ ':status': 200, 'x-path': String(h[':path']) }, { endStream: true }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const ask = async (path: string): Promise<string> => {
      const req = session.request({ ':path': path }, { endStream: true });
      const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
      req.resume();
      return String(headers['x-path']);
    };
    // The first request is queued until the session connects (the bound callback runs later).
    assert.deepEqual(await Promise.all([ask('/a'), ask('/b')]), ['/a', '/b']);
    assert.equal(await ask('/c'), '/c');
  } finally {
    session.close();
    server.close();
  }
});
