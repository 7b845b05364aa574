import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSummary, summarize } from '../../bench/lib/report.ts';
import type { RoundResult } from '../../bench/lib/round.ts';
import type { PathName } from '../../bench/paths/path.ts';

/** A round of `path` whose max-throughput run cost `cpu` µs per request (or failed). */
function round(n: number, path: PathName, cpu: number, ok = true): RoundResult {
  return {
    round: n,
    path,
    protocol: 'http1',
    ok,
    proxyNames: ['a', 'b'],
    max: { rps: 1000, cpuUsPerRequest: cpu, proxyCpuS: [1, 1], stealPct: 0 } as RoundResult['max'],
  };
}

test('summarize: floor ratios are taken within each round, then the median', () => {
  // Machine weather: round 2 is twice as slow for every path. Ratios of medians would mix rounds.
  const rounds = [
    round(1, 'haproxy', 30),
    round(1, 'node-floor-lean', 69),
    round(1, 'hexmesh', 75),
    round(2, 'haproxy', 60),
    round(2, 'node-floor-lean', 150),
    round(2, 'hexmesh', 180),
    round(3, 'haproxy', 40),
    round(3, 'node-floor-lean', 88),
    round(3, 'hexmesh', 0, false), // failed: its floor ratio is left out, not counted as 0
  ];
  const s = summarize(rounds, ['hexmesh', 'haproxy', 'node-floor-lean']);
  assert.equal(s.floor?.path, 'node-floor-lean');
  assert.deepEqual(
    [s.floor!.floorOverHaproxy.min, s.floor!.floorOverHaproxy.median, s.floor!.floorOverHaproxy.max],
    [2.2, 2.3, 2.5],
  );
  assert.equal(s.floor!.hexmeshOverFloor.n, 2);
  assert.ok(Math.abs(s.floor!.hexmeshOverFloor.min - 75 / 69) < 1e-9);
  assert.ok(Math.abs(s.floor!.hexmeshOverFloor.max - 1.2) < 1e-9);
  assert.match(
    formatSummary(s),
    /node-floor-lean \/ HAProxy 2\.30 \[2\.20–2\.50\]×, hexmesh \/ node-floor-lean 1\.14 \[1\.09–1\.20\]×/,
  );
});

test('summarize: no floor figures without a floor path', () => {
  const s = summarize([round(1, 'haproxy', 30), round(1, 'hexmesh', 75)], ['hexmesh', 'haproxy']);
  assert.equal(s.floor, undefined);
  assert.doesNotMatch(formatSummary(s), /per round: node-floor/);
});
