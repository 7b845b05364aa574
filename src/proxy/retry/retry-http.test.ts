/**
 * The resilience layers over the real HTTP/1.1 transport and a real server on 127.0.0.1:0:
 * retries with body replay, connect failures to another endpoint, and timeouts that cancel
 * the upstream request.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { compose, type Service } from '../core/dispatch.ts';
import { timeoutLayer } from '../timeout/timeout-layer.ts';
import { H1Transport } from '../transport/h1-transport.ts';
import { PLAINTEXT } from '../transport/hop-security.ts';
import { resolveResilience } from './resilience-options.ts';
import { retryLayer } from './retry-layer.ts';
import { fakeRequest, readAll } from './test-support.ts';

const T = { timeout: 15_000 };
type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
let handler: Handler = (_q, res) => res.end();
let server: Server;
let live: H1Transport;
let dead: H1Transport;
const aborted: string[] = [];

function transport(port: number): H1Transport {
  return new H1Transport('127.0.0.1', port, {
    connectTimeout: 2000,
    maxConnections: 4,
    idleTimeout: 1000,
    bodyTimeout: 5000,
    security: PLAINTEXT,
  });
}

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks)));
    res.on('close', () => {
      if (!res.writableFinished) aborted.push(req.url ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  live = transport((server.address() as AddressInfo).port);
  // A port nobody listens on: connections to it are refused.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  dead = transport(deadPort);
});

after(async () => {
  await live.destroy();
  await dead.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** The balancer stand-in: try 0 may go to a dead endpoint, later tries to the live one. */
function toEndpoints(first: H1Transport): Service {
  return (req) => {
    const t = req.ctx.attempt === 0 ? first : live;
    req.ctx.endpoint = t.target;
    return t.request(req, req.ctx.trySignal ?? req.ctx.signal);
  };
}

test('a PUT body streamed in chunks is replayed byte-identically to the real upstream', T, async () => {
  const seen: Buffer[] = [];
  handler = (_q, res, body) => {
    seen.push(body);
    res.statusCode = seen.length === 1 ? 503 : 200;
    res.end(`try ${seen.length}`);
  };
  const opts = resolveResilience({ retry: { codes: [503] } });
  const svc = compose(
    [timeoutLayer(opts.timeouts), retryLayer(opts, { random: () => 0 })],
    toEndpoints(live),
  );
  const src = new PassThrough();
  const parts = [randomBytes(8000), randomBytes(16000), randomBytes(9000)];
  const req = fakeRequest({ method: 'PUT', body: src });
  req.headers['content-type'] = 'application/octet-stream';
  const pending = svc(req);
  for (const p of parts) {
    src.write(p);
    await new Promise((r) => setImmediate(r));
  }
  src.end();
  const res = await pending;
  assert.equal(res.status, 200);
  assert.equal((await readAll(res.body)).toString(), 'try 2');
  const whole = Buffer.concat(parts);
  assert.equal(seen.length, 2);
  assert.ok(seen[0].equals(whole) && seen[1].equals(whole));
});

test('a refused connection is retried for a POST, on another endpoint', T, async () => {
  handler = (_q, res, body) => res.end(`got ${body.length}`);
  const opts = resolveResilience();
  const svc = compose(
    [timeoutLayer(opts.timeouts), retryLayer(opts, { random: () => 0 })],
    toEndpoints(dead),
  );
  const req = fakeRequest({ method: 'POST', body: PassThrough.from([Buffer.from('payload')]) });
  const res = await svc(req);
  assert.equal(res.status, 200);
  assert.equal((await readAll(res.body)).toString(), 'got 7');
  assert.equal(req.ctx.notes.retries, 1);
  assert.equal(req.ctx.endpoint, live.target);
});

test('the request timeout cancels the upstream request', T, async () => {
  const timers: NodeJS.Timeout[] = [];
  handler = (_q, res) => {
    timers.push(setTimeout(() => res.end('late'), 3000));
  };
  const svc = compose([timeoutLayer({ request: 100 })], toEndpoints(live));
  const req = fakeRequest({ dstService: 'slow' });
  req.path = '/slow';
  await assert.rejects(svc(req), {
    code: 'HEXMESH_ERR_TIMEOUT',
    message: 'timeout after 100 ms calling slow',
  });
  const until = performance.now() + 2000;
  while (!aborted.includes('/slow') && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
  for (const t of timers) clearTimeout(t);
  assert.ok(aborted.includes('/slow'), 'the upstream saw the request go away');
});
