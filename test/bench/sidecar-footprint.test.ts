import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  packagesIn,
  parseLoad,
  readingLine,
  timelineHeader,
  timelineRow,
  timelineTimes,
} from '../../bench/sidecar-footprint.ts';

test('parseLoad: RPS:SECONDS, fractional rates, spaces around the colon', () => {
  assert.deepEqual(parseLoad('1000:10'), { rps: 1000, seconds: 10 });
  assert.deepEqual(parseLoad('2.5 : 1'), { rps: 2.5, seconds: 1 });
});

test('parseLoad: a missing part, zero, a duration under a second or garbage names the flag', () => {
  for (const bad of ['1000', ':10', '1000:', '0:10', '1000:0', '1000:0.5', '-5:10', '1e3:10', 'fast:10', ''])
    assert.throws(() => parseLoad(bad), /--load must be RPS:SECONDS/, bad);
});

test('timelineTimes: the first reading, then every multiple of the beat after it, up to the end', () => {
  assert.deepEqual(timelineTimes(300, 1000, 3), [300, 1000, 2000, 3000]);
  // A first reading on the beat is not read twice.
  assert.deepEqual(timelineTimes(1000, 1000, 3), [1000, 2000, 3000]);
  assert.deepEqual(timelineTimes(300, 250, 1), [300, 500, 750, 1000]);
  // A timeline shorter than the first reading reads nothing.
  assert.deepEqual(timelineTimes(300, 1000, 0), []);
});

test('timelineRow and readingLine: MiB with one decimal, client side first, GC pauses per proxy', () => {
  const row = {
    atMs: 10_012,
    rssKiB: [59_494, 56_730],
    ussKiB: [15_667, 12_493],
    gc: [
      { scavenges: 0, markCompacts: 1 },
      { scavenges: 2, markCompacts: 0 },
    ],
  };
  assert.equal(readingLine(row), 'RSS 58.1/55.4 USS 15.3/12.2 MiB');
  const cells = timelineRow(row).trim().split(/\s+/);
  assert.deepEqual(cells, ['10.0', '58.1', '15.3', '55.4', '12.2', '0/1', '2/0']);
  // The columns line up under the header's.
  const header = timelineHeader(['hexmesh-client', 'hexmesh-server']);
  assert.equal(timelineRow(row).indexOf('15.3') + 4, header.indexOf('USS') + 3);
  assert.equal(
    timelineRow({ ...row, gc: undefined })
      .trim()
      .split(/\s+/).length,
    5,
  );
});

test('packagesIn: package names from a module trace, scoped ones whole, each once', () => {
  const trace = [
    'file:///app/node_modules/zod/lib/index.js',
    'file:///app/node_modules/@opentelemetry/api/build/src/index.js',
    'file:///app/node_modules/zod/lib/types.js',
    'node:http',
    'file:///app/dist/hexmesh.mjs',
  ].join('\n');
  assert.deepEqual(packagesIn(trace), ['@opentelemetry/api', 'zod']);
});
