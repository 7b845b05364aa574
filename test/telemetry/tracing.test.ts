/**
 * Tracing end to end: three services A → B → C, each behind its own sidecar, spans exported
 * over OTLP/HTTP to a local receiver. The spans must form one trace whose parent/child chain
 * crosses every sidecar: A server → A client → B server → B client → C server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { callChain, OtlpReceiver, startChain, type ReceivedSpan } from './tracing-support.ts';

const SERVER = 2;
const CLIENT = 3;
const W3C = ['traceparent', 'tracestate'];

/** The spans of one trace ordered root → leaf, asserting it is a single chain. */
function chainOf(spans: ReceivedSpan[]): ReceivedSpan[] {
  const byParent = new Map(spans.map((s) => [s.parentSpanId, s]));
  const ids = new Set(spans.map((s) => s.spanId));
  const roots = spans.filter((s) => !ids.has(s.parentSpanId));
  assert.equal(roots.length, 1, `one root span expected, got ${JSON.stringify(roots)}`);
  const out = [roots[0]];
  for (let s = byParent.get(roots[0].spanId); s; s = byParent.get(s.spanId)) out.push(s);
  assert.equal(out.length, spans.length, 'every span is on one parent/child chain');
  return out;
}

function describeChain(chain: ReceivedSpan[]): string[] {
  return chain.map(
    (s) => `${s.service}:${s.kind === SERVER ? 'server' : s.kind === CLIENT ? 'client' : s.kind}`,
  );
}

test('W3C: one trace across three sidecars, correct parent/child chain and attributes', async (t) => {
  const rx = new OtlpReceiver();
  const endpoint = await rx.start();
  t.after(() => rx.close());
  const chain = await startChain({ endpoint, sampleRate: 1 }, W3C);
  t.after(() => chain.close());

  const parentTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parentSpan = '00f067aa0ba902b7';
  const status = await callChain(chain, {
    traceparent: `00-${parentTrace}-${parentSpan}-01`,
    tracestate: 'vendor=opaque',
  });
  assert.equal(status, 200);
  const spans = await rx.waitFor(5);
  assert.equal(spans.length, 5, JSON.stringify(spans, null, 1));
  assert.ok(
    spans.every((s) => s.traceId === parentTrace),
    'all spans join the incoming trace',
  );
  const ordered = chainOf(spans);
  assert.deepEqual(describeChain(ordered), ['a:server', 'a:client', 'b:server', 'b:client', 'c:server']);
  assert.equal(ordered[0].parentSpanId, parentSpan, "A's server span is a child of the caller's span");

  const bClient = ordered[3];
  assert.equal(bClient.attributes['hexmesh.direction'], 'outbound');
  assert.equal(bClient.attributes['hexmesh.src_service'], 'b');
  assert.equal(bClient.attributes['hexmesh.dst_service'], 'c');
  assert.equal(bClient.attributes['http.request.method'], 'GET');
  assert.equal(bClient.attributes['http.response.status_code'], 200);
  assert.equal(bClient.attributes['hexmesh.retries'], 0);
  assert.equal(bClient.attributes['hexmesh.route'], 'default');
  assert.match(String(bClient.attributes['hexmesh.endpoint']), /^127\.0\.0\.1:\d+$/);
  const aServer = ordered[0];
  assert.equal(aServer.attributes['url.path'], '/start', 'no query string in spans');
  assert.equal(aServer.attributes['hexmesh.direction'], 'inbound');
  assert.equal(ordered[4].attributes['hexmesh.dst_service'], 'c');

  // C's app got the context of C's server span, and the vendor state untouched.
  const tp = String(chain.lastAtC?.traceparent);
  assert.equal(tp, `00-${parentTrace}-${ordered[4].spanId}-01`);
  assert.equal(chain.lastAtC?.tracestate, 'vendor=opaque');
});

test('a new trace starts at the first sidecar when the request carries none', async (t) => {
  const rx = new OtlpReceiver();
  const endpoint = await rx.start();
  t.after(() => rx.close());
  const chain = await startChain({ endpoint, sampleRate: 1, serviceName: 'custom' }, W3C);
  t.after(() => chain.close());
  assert.equal(await callChain(chain), 200);
  const spans = await rx.waitFor(5);
  const ordered = chainOf(spans);
  assert.equal(ordered[0].parentSpanId, '');
  assert.equal(new Set(spans.map((s) => s.traceId)).size, 1);
  assert.ok(
    spans.every((s) => s.service === 'custom'),
    'serviceName overrides service.name',
  );
});

test('B3 multi-header propagation (64-bit trace id) forms the same chain', async (t) => {
  const rx = new OtlpReceiver();
  const endpoint = await rx.start();
  t.after(() => rx.close());
  // A Zipkin-instrumented app forwards only the x-b3-* headers.
  const chain = await startChain({ endpoint, sampleRate: 0 }, [
    'x-b3-traceid',
    'x-b3-spanid',
    'x-b3-parentspanid',
    'x-b3-sampled',
  ]);
  t.after(() => chain.close());
  const tid = 'a3ce929d0e0e4736';
  assert.equal(
    await callChain(chain, { 'x-b3-traceid': tid, 'x-b3-spanid': '00f067aa0ba902b7', 'x-b3-sampled': '1' }),
    200,
  );
  const spans = await rx.waitFor(5);
  assert.equal(spans.length, 5, 'sampled by the parent even at sampleRate 0');
  assert.ok(spans.every((s) => s.traceId === `0000000000000000${tid}`));
  assert.deepEqual(describeChain(chainOf(spans)), [
    'a:server',
    'a:client',
    'b:server',
    'b:client',
    'c:server',
  ]);
  const atC = chain.lastAtC!;
  assert.equal(atC['x-b3-traceid'], tid, 'written back at the width received');
  const cServer = spans.find((s) => s.service === 'c')!;
  assert.equal(atC['x-b3-spanid'], cServer.spanId);
  assert.equal(atC['x-b3-parentspanid'], cServer.parentSpanId);
  assert.equal(atC['x-b3-sampled'], '1');
});

test('B3 single header propagation', async (t) => {
  const rx = new OtlpReceiver();
  const endpoint = await rx.start();
  t.after(() => rx.close());
  const chain = await startChain({ endpoint, sampleRate: 0 }, ['b3']);
  t.after(() => chain.close());
  const tid = '80f198ee56343ba864fe8b2a57d3eff7';
  assert.equal(await callChain(chain, { b3: `${tid}-e457b5a2e4d86bd1-1` }), 200);
  const spans = await rx.waitFor(5);
  assert.equal(spans.length, 5);
  assert.ok(spans.every((s) => s.traceId === tid));
  const ordered = chainOf(spans);
  assert.equal(ordered[0].parentSpanId, 'e457b5a2e4d86bd1');
  assert.equal(chain.lastAtC?.b3, `${tid}-${ordered[4].spanId}-1-${ordered[3].spanId}`);
});

test('sampling 0 sends nothing, and a not-sampled parent is respected', async (t) => {
  const rx = new OtlpReceiver();
  const endpoint = await rx.start();
  t.after(() => rx.close());
  const chain = await startChain({ endpoint, sampleRate: 0 }, W3C);
  t.after(() => chain.close());
  for (let i = 0; i < 5; i++) assert.equal(await callChain(chain), 200);
  // The downstream still gets a context, flagged not sampled, so every hop agrees.
  assert.match(String(chain.lastAtC?.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  // A not-sampled parent stays unsampled even where the rate would sample.
  const all = await startChain({ endpoint, sampleRate: 1 }, W3C);
  t.after(() => all.close());
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
  assert.equal(await callChain(all, { traceparent: tp }), 200);
  await Promise.all(
    [chain, all].flatMap((c) => Object.values(c.proxies).map((p) => p.proxy.tracing.flush())),
  );
  await new Promise((r) => setTimeout(r, 1500)); // longer than the batch delay
  assert.equal(rx.spans.length, 0, JSON.stringify(rx.spans));
  assert.equal(rx.posts, 0);
});

test('tracing off: trace headers pass through untouched and no span is made', async (t) => {
  const chain = await startChain(undefined, [...W3C, 'b3']);
  t.after(() => chain.close());
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  assert.equal(await callChain(chain, { traceparent: tp, tracestate: 'x=1', b3: '1' }), 200);
  assert.equal(chain.lastAtC?.traceparent, tp);
  assert.equal(chain.lastAtC?.tracestate, 'x=1');
  assert.equal(chain.lastAtC?.b3, '1');
  assert.equal(chain.proxies.a.proxy.tracing.tracer, undefined);
});
