/**
 * The request's cancellation signal in both listeners (issue 11): once a response is written,
 * nothing stays attached to it (a listener left on a per-request signal kept the whole request
 * graph alive into the old generation); when the client goes away first, it aborts and the
 * current try's signal with it.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import type { CancelSignal } from '../core/cancel.ts';
import type { MeshRequest, MeshResponse, Service } from '../core/dispatch.ts';
import { TryScope } from '../timeout/try-scope.ts';
import { H2Server } from './h2-server.ts';
import { Http1Server } from './http1-server.ts';

const ID = { direction: 'inbound', service: 'web' } as const;

function attached(s: CancelSignal): number {
  return s instanceof EventTarget
    ? getEventListeners(s, 'abort').length
    : (s as unknown as { listenerCount: number }).listenerCount;
}

/** A service under a request timeout: the TryScope listens on the request's signal. */
function timed(seen: MeshRequest[], inner: Service): Service {
  return (req) => {
    seen.push(req);
    return new TryScope(req.ctx.signal).run(inner, req, 60_000, 'request');
  };
}

const answer: Service = () =>
  Promise.resolve({ status: 200, headers: { 'content-type': 'text/plain' }, body: Readable.from(['ok']) });

async function serve(accept: (s: net.Socket) => void): Promise<{ port: number; close(): void }> {
  const srv = net.createServer(accept);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('HTTP/1: a finished exchange leaves no listener on its signal', async (t) => {
  const seen: MeshRequest[] = [];
  const h1 = new Http1Server(ID, timed(seen, answer), {
    maxHeaderSize: 16384,
    headerTimeout: 10_000,
    idleTimeout: 5_000,
  });
  const srv = await serve((s) => h1.accept(s, Buffer.alloc(0)));
  t.after(() => {
    h1.close();
    srv.close();
  });
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  for (let i = 0; i < 3; i++) {
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ port: srv.port, host: '127.0.0.1', path: '/', agent }, (res) => {
          let b = '';
          res.setEncoding('utf8').on('data', (c: string) => (b += c));
          res.on('end', () => resolve(b));
        })
        .on('error', reject);
    });
    assert.equal(body, 'ok');
  }
  await until(() => h1.inflight === 0, 'the exchanges to close');
  assert.equal(seen.length, 3);
  for (const req of seen) {
    assert.equal(req.ctx.signal.aborted, false);
    assert.equal(attached(req.ctx.signal), 0, 'listeners left on a finished request signal');
  }
});

test('HTTP/1: a client gone mid-request aborts the request and its try', async (t) => {
  const seen: MeshRequest[] = [];
  const hang: Service = () => new Promise<MeshResponse>(() => {});
  const h1 = new Http1Server(ID, timed(seen, hang), {
    maxHeaderSize: 16384,
    headerTimeout: 10_000,
    idleTimeout: 5_000,
  });
  const srv = await serve((s) => h1.accept(s, Buffer.alloc(0)));
  t.after(() => {
    h1.close();
    srv.close();
  });
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  sock.write('GET / HTTP/1.1\r\nhost: web\r\n\r\n');
  await until(() => seen.length === 1, 'the request');
  sock.destroy();
  const ctx = seen[0].ctx;
  await until(() => ctx.signal.aborted, 'the request signal to abort');
  assert.equal(ctx.trySignal?.aborted, true);
});

test('HTTP/2: a finished stream leaves no listener on its signal; a reset one aborts it', async (t) => {
  const seen: MeshRequest[] = [];
  const service: Service = (req) =>
    req.path === '/hang' ? new Promise<MeshResponse>(() => {}) : answer(req);
  const h2 = new H2Server(ID, timed(seen, service), {
    maxHeaderSize: 16384,
    idleTimeout: 5_000,
    maxConcurrentStreams: 100,
  });
  const srv = await serve((s) => h2.accept(s, Buffer.alloc(0)));
  const client = http2.connect(`http://127.0.0.1:${srv.port}`);
  client.on('error', () => {});
  t.after(() => {
    client.destroy();
    h2.close();
    srv.close();
  });
  for (let i = 0; i < 3; i++) {
    const s = client.request({ ':path': '/' });
    s.setEncoding('utf8');
    let b = '';
    s.on('data', (c: string) => (b += c));
    await new Promise((r) => s.on('close', r));
    assert.equal(b, 'ok');
  }
  const hung = client.request({ ':path': '/hang' });
  hung.on('error', () => {});
  await until(() => seen.length === 4, 'the hanging request');
  hung.close(http2.constants.NGHTTP2_CANCEL);
  await until(() => seen[3].ctx.signal.aborted, 'the reset stream to abort its signal');
  assert.equal(seen[3].ctx.trySignal?.aborted, true);
  await until(() => h2.inflight === 0, 'the streams to close');
  for (const req of seen.slice(0, 3)) {
    assert.equal(req.ctx.signal.aborted, false);
    assert.equal(attached(req.ctx.signal), 0, 'listeners left on a finished stream signal');
  }
});
