import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import type { MeshResponse, Service } from './dispatch.ts';
import { takeWhole } from './whole-body.ts';
import { Http1Server } from '../listen/http1-server.ts';

function completeBody(chunks: string[]): Readable & { complete: boolean } {
  const b = Object.assign(new Readable({ read() {} }), { complete: false });
  for (const c of chunks) b.push(c);
  b.complete = true;
  b.push(null);
  return b;
}

test('takeWhole takes a complete untouched body and ends it; leaves others alone', async () => {
  const b = completeBody(['ab', 'cd']);
  let ended = false;
  b.once('end', () => (ended = true));
  assert.equal(takeWhole(b)?.toString(), 'abcd');
  await new Promise((r) => setImmediate(r));
  assert.equal(ended, true, "'end' listeners still run");
  assert.equal(takeWhole(completeBody([])), null);
  const open = Object.assign(new Readable({ read() {} }), { complete: false });
  open.push('x');
  assert.equal(takeWhole(open), undefined, 'not complete');
  assert.equal(takeWhole(Readable.from(['x'])), undefined, 'not marked');
  const flowing = completeBody(['x']);
  flowing.on('data', () => {});
  assert.equal(takeWhole(flowing), undefined, 'already read by someone');
});

/** Raw HTTP/1.1 exchange with an Http1Server answering `res`. */
async function exchange(t: test.TestContext, res: MeshResponse): Promise<string> {
  const service: Service = () => Promise.resolve(res);
  const h1 = new Http1Server({ direction: 'inbound', service: 'web' }, service, {
    maxHeaderSize: 16384,
    headerTimeout: 10_000,
    idleTimeout: 5_000,
  });
  const srv = net.createServer((s) => h1.accept(s, Buffer.alloc(0)));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    h1.close();
    srv.close();
  });
  const sock = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  sock.end('GET / HTTP/1.1\r\nhost: web\r\nte: trailers\r\nconnection: close\r\n\r\n');
  let out = '';
  sock.setEncoding('utf8').on('data', (c: string) => (out += c));
  await new Promise((r) => sock.on('close', r));
  return out;
}

test('the listener writes a body that came whole without piping it', async (t) => {
  const body = completeBody(['hello ', 'world']);
  const out = await exchange(t, { status: 200, headers: { 'content-length': '11' }, body });
  assert.match(out, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(out.endsWith('\r\n\r\nhello world'), out);
  assert.equal(body.readableFlowing, null, 'the body was piped');
});

test('a whole chunked body still carries its trailers', async (t) => {
  const body = completeBody(['abc']);
  const out = await exchange(t, {
    status: 200,
    headers: { trailer: 'grpc-status' },
    body,
    trailers: { 'grpc-status': '0' },
  });
  assert.match(out, /transfer-encoding: chunked/i);
  assert.match(out, /\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n$/);
  assert.equal(body.readableFlowing, null);
});
