import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { extract, inject, parseB3Single, parseTraceparent } from '../../src/telemetry/tracing/propagation.ts';

const TID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SID = '00f067aa0ba902b7';

test('traceparent: valid, invalid and future versions', () => {
  assert.deepEqual(parseTraceparent(`00-${TID}-${SID}-01`), {
    traceId: TID,
    spanId: SID,
    sampled: true,
    format: 'w3c',
    shortTraceId: false,
  });
  assert.equal(parseTraceparent(`00-${TID}-${SID}-00`)?.sampled, false);
  for (const bad of [
    `00-${'0'.repeat(32)}-${SID}-01`, // zero trace id
    `00-${TID}-${'0'.repeat(16)}-01`, // zero span id
    `ff-${TID}-${SID}-01`, // forbidden version
    `00-${TID.toUpperCase()}-${SID}-01`, // upper case
    `00-${TID}-${SID}-01-extra`, // version 00 has no extra fields
    `00-${TID}-${SID}`,
    '',
  ])
    assert.equal(parseTraceparent(bad), undefined, bad);
  assert.equal(parseTraceparent(`01-${TID}-${SID}-01-future`)?.traceId, TID);
});

test('b3 single: ids, sampling, debug, deny-only', () => {
  assert.equal(parseB3Single(`${TID}-${SID}-1`)?.sampled, true);
  assert.equal(parseB3Single(`${TID}-${SID}-0`)?.sampled, false);
  assert.equal(parseB3Single(`${TID}-${SID}-d-1111111111111111`)?.sampled, true);
  assert.equal(parseB3Single(`${TID}-${SID}`)?.sampled, true);
  assert.equal(parseB3Single('a3ce929d0e0e4736-' + SID)?.traceId, '0000000000000000a3ce929d0e0e4736');
  assert.equal(parseB3Single('0'), undefined);
  assert.equal(parseB3Single(`${TID}-${SID}-x`), undefined);
});

test('W3C wins over B3 when both are present', () => {
  const c = extract({ traceparent: `00-${TID}-${SID}-00`, b3: `${'1'.repeat(32)}-${'2'.repeat(16)}-1` });
  assert.equal(c?.format, 'w3c');
  assert.equal(c?.sampled, false);
});

test('property: inject then extract gives back the context, in every format', () => {
  const hex = (n: number) =>
    fc
      .string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n })
      .filter((s) => /[1-9a-f]/.test(s));
  fc.assert(
    fc.property(
      hex(32),
      hex(16),
      fc.boolean(),
      fc.constantFrom('w3c', 'b3', 'b3multi'),
      (tid, sid, sampled, format) => {
        const incoming = { traceId: TID, spanId: SID, sampled: true, format, shortTraceId: false } as const;
        const h = {};
        inject(h, tid, sid, sampled, incoming);
        assert.deepEqual(extract(h), {
          traceId: tid,
          spanId: sid,
          sampled,
          format: 'w3c',
          shortTraceId: false,
        });
        const { traceparent: _, ...b3only } = h as Record<string, string>;
        if (format !== 'w3c') {
          const c = extract(b3only);
          assert.equal(c?.traceId, tid);
          assert.equal(c?.spanId, sid);
          assert.equal(c?.sampled, sampled);
        }
      },
    ),
  );
});

test('property: parsers never throw on arbitrary input', () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.string(), (a, b, c) => {
      extract({ traceparent: a, b3: b, 'x-b3-traceid': c, 'x-b3-spanid': a });
    }),
  );
});
