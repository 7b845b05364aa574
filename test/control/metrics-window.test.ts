import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseAll, PromTextError } from '../../src/control/metrics/prom-text.ts';
import { histogramQuantile } from '../../src/control/metrics/histogram.ts';
import { DeltaRing } from '../../src/control/metrics/delta-ring.ts';
import { WindowStore, isSuccess } from '../../src/control/metrics/window-store.ts';
import { ProxyMetrics } from '../../src/telemetry/metrics.ts';

test('prom-text: samples, escapes, special values, comments, timestamps', () => {
  const s = parseAll(
    [
      '# HELP x help with "quotes"',
      '# TYPE x counter',
      'x 1',
      'x{a="b",c="d\\"e\\\\f\\ng"} 2.5 1700000000000',
      '  y{le="+Inf",} +Inf',
      'z NaN',
      'w -Inf\r',
      '',
    ].join('\n'),
  );
  assert.deepEqual(s[0], { name: 'x', labels: {}, value: 1 });
  assert.deepEqual(s[1], { name: 'x', labels: { a: 'b', c: 'd"e\\f\ng' }, value: 2.5 });
  assert.deepEqual(s[2], { name: 'y', labels: { le: '+Inf' }, value: Infinity });
  assert.ok(Number.isNaN(s[3].value));
  assert.equal(s[4].value, -Infinity);
  for (const bad of [
    'x{a="b} 1',
    'x{a=b} 1',
    'x',
    'x{a="1",a="2"} 1',
    'x abc',
    '1x 1',
    'x{a="\\q"} 1',
    'x 1 now',
  ])
    assert.throws(() => parseAll(bad), PromTextError, bad);
});

test('prom-text: parses a real proxy exposition, label values round-trip', async () => {
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 20 }), fc.nat({ max: 1000 }), async (src, n) => {
      const m = new ProxyMetrics({ service: 's', namespace: 'n', processMetrics: false });
      const series = m.requestSeries('inbound', src, 's', 'default', true);
      for (let i = 0; i < n; i++) series.record(200, -1, 0.003);
      const samples = parseAll(await m.scrape());
      const req = samples.filter((x) => x.name === 'hexmesh_requests_total');
      if (n === 0) return assert.equal(req.length, 0);
      assert.equal(req.length, 1);
      assert.equal(req[0].labels.src_service, src);
      assert.equal(req[0].value, n);
      const inf = samples.find(
        (x) => x.name === 'hexmesh_request_duration_seconds_bucket' && x.labels.le === '+Inf',
      );
      assert.equal(inf?.value, n);
    }),
    { numRuns: 50 },
  );
});

test('histogramQuantile matches PromQL histogram_quantile', () => {
  const b = [
    { le: 0.1, count: 50 },
    { le: 0.2, count: 90 },
    { le: 0.5, count: 100 },
    { le: Infinity, count: 100 },
  ];
  assert.equal(histogramQuantile(0.5, b), 0.1);
  assert.ok(Math.abs(histogramQuantile(0.7, b)! - 0.15) < 1e-9);
  assert.ok(Math.abs(histogramQuantile(0.95, b)! - 0.35) < 1e-9);
  assert.equal(
    histogramQuantile(0.99, [
      { le: 1, count: 1 },
      { le: Infinity, count: 10 },
    ]),
    1,
  );
  assert.equal(
    histogramQuantile(0.5, [
      { le: 1, count: 0 },
      { le: Infinity, count: 0 },
    ]),
    null,
  );
  assert.equal(histogramQuantile(0.5, [{ le: 1, count: 3 }]), null);
});

test('isSuccess: non-5xx and gRPC OK', () => {
  assert.equal(isSuccess('200', ''), true);
  assert.equal(isSuccess('404', ''), true);
  assert.equal(isSuccess('503', ''), false);
  assert.equal(isSuccess('200', '0'), true);
  assert.equal(isSuccess('200', '14'), false);
});

const req = (v: number, status = '200', extra: Record<string, string> = {}) => ({
  name: 'hexmesh_requests_total',
  labels: {
    direction: 'inbound',
    src_service: 'a',
    dst_service: 'b',
    route: 'default',
    status_code: status,
    grpc_status: '',
    tls: 'false',
    ...extra,
  },
  value: v,
});

test('window store: baseline, increases, counter resets, new series, window edges', () => {
  let now = 1_000_000;
  const w = new WindowStore({ resolutionMs: 1000, retentionMs: 10_000, now: () => now });
  const t = WindowStore.newTarget();
  const total = () =>
    w.aggregate(...(Object.values(w.range(10_000)) as [number, number]), () => 'all').get('all');
  w.ingest(t, 'ns', [req(100)]); // first scrape: baseline only
  assert.equal(total(), undefined);
  now += 1000;
  w.ingest(t, 'ns', [req(130), req(5, '500')]); // +30 ok, new series +5 failures
  now += 1000;
  w.ingest(t, 'ns', [req(10), req(5, '500')]); // reset: +10
  const a = total()!;
  assert.deepEqual([a.requests, a.ok], [45, 40]);
  // 1 s window holds only the last slot.
  const last = w.range(1000);
  assert.equal(w.aggregate(last.from, last.to, () => 'x').get('x')?.requests, 10);
  // Past the retention everything is gone.
  now += 20_000;
  assert.equal(total(), undefined);
  // The overflow series and non-finite values are ignored.
  w.ingest(t, 'ns', [req(1e9, 'overflow', { direction: 'overflow' })]);
  assert.equal(w.seriesCount, 2);
});

test('window store: the series cap bounds memory and counts what it drops', () => {
  let now = 0;
  const w = new WindowStore({ resolutionMs: 1000, retentionMs: 5000, maxSeries: 3, now: () => now });
  const t = WindowStore.newTarget();
  w.ingest(t, 'ns', []);
  now += 1000;
  w.ingest(
    t,
    'ns',
    [1, 2, 3, 4, 5].map((i) => req(1, '200', { dst_service: `s${i}` })),
  );
  assert.equal(w.seriesCount, 3);
  assert.equal(w.droppedSamples, 2);
});

test('window store sums match a model under random scrapes and resets (property)', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ inc: fc.nat({ max: 50 }), reset: fc.boolean(), gap: fc.integer({ min: 1, max: 3 }) }),
        {
          minLength: 1,
          maxLength: 40,
        },
      ),
      (steps) => {
        let now = 0;
        const w = new WindowStore({ resolutionMs: 1000, retentionMs: 20_000, now: () => now });
        const t = WindowStore.newTarget();
        let counter = 0;
        w.ingest(t, 'ns', [req(counter)]);
        const model: { at: number; inc: number }[] = [];
        for (const s of steps) {
          now += s.gap * 1000;
          // A reset is visible only when the counter went down (as in Prometheus): a
          // restarted proxy that already counted past the old value looks like an increase.
          const inc = s.reset ? (s.inc < counter ? s.inc : s.inc - counter) : s.inc;
          counter = s.reset ? s.inc : counter + s.inc;
          w.ingest(t, 'ns', [req(counter)]);
          model.push({ at: Math.floor(now / 1000), inc });
        }
        for (const windowS of [1, 5, 20]) {
          const { from, to } = w.range(windowS * 1000);
          const want = model.filter((m) => m.at >= from && m.at <= to).reduce((a, m) => a + m.inc, 0);
          assert.equal(w.aggregate(from, to, () => 'k').get('k')?.requests ?? 0, want);
        }
      },
    ),
  );
});

test('delta ring: overwritten slots read as zero', () => {
  const r = new DeltaRing(3);
  r.add(0, 1);
  r.add(1, 2);
  r.add(3, 4); // overwrites slot 0
  assert.equal(r.at(0), 0);
  assert.equal(r.sum(0, 3), 6);
  assert.equal(r.sum(3, 3), 4);
});
