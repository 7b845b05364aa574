import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { LeanCounter, LeanHistogram } from './lean-metric.ts';

const NAMES = ['direction', 'route', 'tls'];
const BUCKETS = [0.001, 0.005, 0.01, 0.5, 2];

const obs = fc.record({
  labels: fc.tuple(
    fc.constantFrom('inbound', 'outbound'),
    fc.constantFrom('a', 'b"\\\n'),
    fc.constantFrom('true', 'false'),
  ),
  value: fc.oneof(fc.double({ min: 0, max: 3, noNaN: true }), fc.constantFrom(0.001, 0.005, 2)),
  by: fc.integer({ min: 1, max: 5 }),
});

test('lean counter and histogram export exactly what prom-client exports for the same records', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(obs, { maxLength: 60 }), async (records) => {
      const promReg = new Registry();
      const leanReg = new Registry();
      const pc = new Counter({ name: 'c_total', help: 'h', labelNames: NAMES, registers: [promReg] });
      const ph = new Histogram({
        name: 'd_seconds',
        help: 'h',
        labelNames: NAMES,
        buckets: BUCKETS,
        registers: [promReg],
      });
      const lc = new LeanCounter('c_total', 'h', NAMES, [leanReg]);
      const lh = new LeanHistogram('d_seconds', 'h', NAMES, BUCKETS, [leanReg]);
      for (const r of records) {
        pc.labels(...r.labels).inc(r.by);
        lc.labels(...r.labels).inc(r.by);
        ph.labels(...r.labels).observe(r.value);
        lh.labels(...r.labels).observe(r.value);
      }
      assert.equal(await leanReg.metrics(), await promReg.metrics());
      assert.deepEqual(await leanReg.getMetricsAsJSON(), await promReg.getMetricsAsJSON());
    }),
    { numRuns: 100 },
  );
});

test('lean metrics: one child per label set; a wrong label count and a non-finite value are refused', () => {
  const reg = new Registry();
  const h = new LeanHistogram('d_seconds', 'h', NAMES, BUCKETS, [reg]);
  assert.equal(h.labels('inbound', 'a', 'true'), h.labels('inbound', 'a', 'true'));
  assert.notEqual(h.labels('inbound', 'a', 'true'), h.labels('inbound', 'a', 'false'));
  assert.throws(() => h.labels('inbound', 'a'), /expected 3 label values/);
  assert.throws(() => h.labels('inbound', 'a', 'true').observe(Number.NaN), /not a finite number/);
  assert.throws(() => new LeanCounter('d_seconds', 'h', NAMES, [reg]), /already been registered/);
});
