/**
 * The collector's error history (src/control/metrics/error-history.ts): only failures are
 * kept, a first scrape is a baseline, a counter reset counts its whole value, last-seen is
 * the scrape that saw an increase, synthetic responses keep their kind (the caller being
 * the reporting proxy outbound), and the series cap holds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorHistory, SYNTHETIC } from '../../src/control/metrics/error-history.ts';
import { REQUESTS, WindowStore } from '../../src/control/metrics/window-store.ts';

const req = (status: string, value: number, grpc = '') => ({
  name: REQUESTS,
  labels: {
    direction: 'inbound',
    src_service: 'client',
    dst_service: 'ratings',
    route: 'default',
    status_code: status,
    grpc_status: grpc,
    tls: 'true',
  },
  value,
});
const synth = (direction: string, code: string, value: number) => ({
  name: SYNTHETIC,
  labels: { direction, dst_service: 'ratings', code },
  value,
});
const origin = { instance: 'ratings-1', version: 'v2', revision: '2', deployment: '' };

test('error history: failures only, baseline, resets, last seen, kinds', () => {
  const h = new ErrorHistory((ms) => Math.floor(ms / 1000), 61);
  const t = WindowStore.newTarget();
  const scrape = (at: number, samples: ReturnType<typeof req | typeof synth>[], reporter = 'ratings') =>
    h.ingest(t, 'default', samples, at, origin, reporter);
  scrape(1000, [req('200', 50), req('503', 7)]); // baseline: nothing counted
  assert.equal([...h.counts(0, 60)].length, 0);
  scrape(2000, [req('200', 60), req('503', 9), req('200', 1, '14'), synth('inbound', 'connect-failed', 2)]);
  scrape(3000, [req('200', 70), req('503', 3), req('200', 1, '14'), synth('inbound', 'connect-failed', 2)]);
  const rows = [...h.counts(0, 60)].map(([s, n]) => [s.status, s.grpcStatus, s.kind, s.src, n, s.lastSeen]);
  assert.deepEqual(
    rows.sort((a, b) => String(a).localeCompare(String(b))),
    [
      ['', '', 'connect-failed', '', 2, 2000],
      ['200', '14', '', 'client', 1, 2000],
      // 7 → 9 is 2; 9 → 3 is a reset: all 3 count.
      ['503', '', '', 'client', 5, 3000],
    ],
  );
  // The window: only slot 3 (the reset's 3).
  assert.deepEqual(
    [...h.counts(3, 3)].map(([s, n]) => [s.status, n]),
    [['503', 3]],
  );
  // Outbound synthetic responses: the reporting proxy is the caller.
  const c = WindowStore.newTarget();
  h.ingest(c, 'default', [synth('outbound', 'circuit-open', 1)], 4000, origin, 'client');
  h.ingest(c, 'default', [synth('outbound', 'circuit-open', 4)], 5000, origin, 'client');
  const out = [...h.counts(0, 60)].find(([s]) => s.kind === 'circuit-open');
  assert.deepEqual([out?.[0].src, out?.[0].direction, out?.[1]], ['client', 'outbound', 3]);
});

test('error history: the series cap drops and counts increases beyond it', () => {
  const h = new ErrorHistory((ms) => Math.floor(ms / 1000), 61, 2);
  const t = WindowStore.newTarget();
  h.ingest(t, 'default', [], 0, origin, 'ratings');
  h.ingest(
    t,
    'default',
    [req('500', 1), req('502', 1), req('503', 1), req('504', 1)],
    1000,
    origin,
    'ratings',
  );
  assert.equal(h.seriesCount, 2);
  assert.equal(h.droppedSamples, 2);
  h.clear();
  assert.equal(h.seriesCount, 0);
});
