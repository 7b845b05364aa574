import { test } from 'node:test';
import assert from 'node:assert/strict';
import { callers, groupOf, summarize } from '../../bench/profile-summary.ts';

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });

// root → handler (ours) → write (node) ; root → (garbage collector) ; root → (idle)
const profile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 4, 5] },
    { id: 2, callFrame: frame('handle', 'file:///app/src/proxy/listen/h2-server.ts', 9), children: [3] },
    { id: 3, callFrame: frame('writeGeneric', 'node:internal/stream_base_commons', 40) },
    { id: 4, callFrame: frame('(garbage collector)') },
    { id: 5, callFrame: frame('(idle)') },
    { id: 6, callFrame: frame('parse', 'file:///app/node_modules/@scope/pkg/lib/p.js', 1) },
  ],
  samples: [2, 3, 3, 4, 5, 5, 6],
  timeDeltas: [100, 200, 200, 100, 1000, 1000, 400],
};

test('groupOf: our code, node, packages (scoped too), V8 nodes', () => {
  assert.equal(groupOf(frame('f', 'file:///x/src/a.ts')), 'hexmesh');
  assert.equal(groupOf(frame('f', 'node:events')), 'node');
  assert.equal(groupOf(frame('f', 'file:///x/node_modules/undici/index.js')), 'package undici');
  assert.equal(groupOf(frame('f', 'file:///x/node_modules/@a/b/c.js')), 'package @a/b');
  assert.equal(groupOf(frame('(garbage collector)')), 'gc');
  assert.equal(groupOf(frame('(program)')), 'program');
  assert.equal(groupOf(frame('(idle)')), 'idle');
});

test('summarize: self time per group, file and function; idle kept apart', () => {
  const s = summarize(profile);
  assert.equal(s.busyMicros, 1000);
  assert.equal(s.idleMicros, 2000);
  assert.deepEqual(
    s.groups.map((g) => [g.key, g.micros, g.share]),
    [
      ['node', 400, 0.4],
      ['package @scope/pkg', 400, 0.4],
      ['hexmesh', 100, 0.1],
      ['gc', 100, 0.1],
    ],
  );
  assert.equal(s.files.find((f) => f.key === 'src/proxy/listen/h2-server.ts')?.micros, 100);
  assert.equal(s.functions[0]!.key, 'writeGeneric node:internal/stream_base_commons:41');
});

test('callers: self time of matching functions under each caller', () => {
  const c = callers(profile, 'writeGeneric');
  assert.deepEqual(
    c.map((r) => [r.key, r.micros]),
    [['handle src/proxy/listen/h2-server.ts:10', 400]],
  );
  assert.equal(c[0]!.share, 0.4);
});
