/**
 * Issue 15 (`-o json|yaml|wide` on every list): `hexmesh top -o wide` adds the failed count,
 * p95 and the slowest request to each row; `-o yaml` prints the same view as `-o json`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { TopWindow, topTable } from '../../src/cli/commands/top.ts';
import { startViewsMesh } from './mesh-views-support.ts';
import { Running } from './control-support.ts';

test('top rows carry failed, p95 and max; the wide table shows them', () => {
  const w = new TopWindow(10_000, () => 1000);
  const ev = (status: number, latencyMs: number) => ({
    type: 'request',
    srcService: 'client',
    dstService: 'ratings',
    method: 'GET',
    path: '/x',
    status,
    latencyMs,
  });
  for (let i = 1; i <= 20; i++) w.add(ev(i % 5 === 0 ? 503 : 200, i));
  const [row] = w.rows();
  assert.deepEqual(
    [row.count, row.failed, row.p50Ms, row.p95Ms, row.p99Ms, row.maxMs],
    [20, 4, 10, 19, 20, 20],
  );
  const narrow = topTable([row]).split('\n')[0];
  assert.doesNotMatch(narrow, /FAILED/);
  const wide = topTable([row], true).trimEnd().split('\n');
  assert.match(
    wide[0],
    /^SOURCE\s+DESTINATION\s+METHOD\s+PATH\s+COUNT\s+SUCCESS\s+P50\s+P99\s+FAILED\s+P95\s+MAX$/,
  );
  assert.match(wide[1], /^client\s+ratings\s+GET\s+\/x\s+20\s+80\.00%\s+10ms\s+20ms\s+4\s+19ms\s+20ms$/);
});

test(
  'hexmesh top --once -o wide and -o yaml against a real control plane',
  { timeout: 90_000 },
  async (t) => {
    const m = await startViewsMesh();
    t.after(() => m.close());
    const env = { HEXMESH_CONTROL: m.cp.url };
    const wide = new Running(['top', 'ratings', '--once', '--for', '6s', '-o', 'wide'], env);
    const yaml = new Running(['top', 'ratings', '--once', '--for', '6s', '-o', 'yaml'], env);
    t.after(() => {
      wide.child.kill();
      yaml.child.kill();
    });
    // Load until both have watched their --for and exited; bounded in time.
    const running = (r: Running) => r.child.exitCode === null && r.child.signalCode === null;
    let next = 0;
    const end = Date.now() + 60_000;
    while ((running(wide) || running(yaml)) && Date.now() < end) {
      await m.call(next % 4 === 0 ? '/fail/x' : '/busy');
      next++;
    }
    assert.equal((await wide.exited).code, 0, wide.stderr);
    const lines = wide.stdout.trimEnd().split('\n');
    assert.match(lines[0], /\s+P99\s+FAILED\s+P95\s+MAX$/);
    const fail = lines.find((l) => l.includes('/fail/x'));
    assert.ok(fail, wide.stdout);
    assert.match(fail, /\s0\.00%\s+\S+ms\s+\S+ms\s+[1-9]\d*\s+\S+ms\s+\S+ms$/);
    assert.equal((await yaml.exited).code, 0, yaml.stderr);
    const view = parse(yaml.stdout) as {
      service: string;
      rows: { path: string; failed: number; count: number }[];
    };
    assert.equal(view.service, 'ratings');
    const f = view.rows.find((r) => r.path === '/fail/x');
    assert.ok(f && f.failed === f.count && f.count > 0, yaml.stdout);
  },
);
