/**
 * Rollout statuses that read right (issue 15), through the real CLI against a real control
 * plane holding the controller's KV keys: no "Failed analyses 0/1" for a rollout without
 * analysis, the paused hint names promote, history shows Paused while the revision is paused.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startCp, type TestCp } from '../control/helpers.ts';
import { rolloutKeys, type HistoryEntry } from '../../src/rollout/rollout-status.ts';
import { fakeStatus, T0 } from '../dashboard/rollout-fixtures.ts';
import { hexmesh } from './control-support.ts';

let cp: TestCp;
const ctl = () => ['--control', cp.url];
const put = async (key: string, value: unknown) =>
  assert.equal((await call(cp.url, 'PUT', `/v1/kv/${key}`, JSON.stringify(value))).status, 200);

before(async () => {
  cp = await startCp();
});
after(() => cp.close());

test('a paused rollout without analysis: "Analysis: none configured", promote named, history Paused', async () => {
  await put(
    rolloutKeys.status('default', 'reviews'),
    fakeStatus({
      phase: 'Paused',
      analysisConfigured: false,
      analysis: [],
      threshold: 1,
      message: 'paused: hexmesh rollout promote reviews finishes it now',
    }),
  );
  const history: HistoryEntry[] = [
    {
      revision: 1,
      changes: ['env.VERSION: v1'],
      startedAt: T0 - 60_000,
      finishedAt: T0 - 1,
      outcome: 'Succeeded',
    },
    { revision: 2, changes: ['env.VERSION: v1 → v2'], startedAt: T0, outcome: 'Progressing' },
  ];
  await put(rolloutKeys.history('default', 'reviews'), history);

  const st = await hexmesh(['rollout', 'status', 'reviews', ...ctl()]);
  assert.equal(st.code, 0, st.stderr);
  assert.doesNotMatch(st.stdout, /Failed analyses/);
  assert.match(st.stdout, /Analysis:\s+none configured/);
  assert.match(st.stdout, /Next:\s+hexmesh rollout promote reviews/);

  const h = await hexmesh(['rollout', 'history', 'reviews', ...ctl()]);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /^2\s+\S+\s+Paused\s/m);
  assert.match(h.stdout, /^1\s+\S+\s+Succeeded\s/m);

  // With analysis: failures counted against what is allowed; not paused: no hint, Progressing.
  await put(
    rolloutKeys.status('default', 'reviews'),
    fakeStatus({ analysisConfigured: true, failedChecks: 1 }),
  );
  const run = await hexmesh(['rollout', 'status', 'reviews', ...ctl()]);
  assert.match(run.stdout, /Analysis:\s+1 failed of 2 allowed before rollback/);
  assert.doesNotMatch(run.stdout, /Next:/);
  assert.match(
    (await hexmesh(['rollout', 'history', 'reviews', ...ctl()])).stdout,
    /^2\s+\S+\s+Progressing\s/m,
  );
  // Analysis configured, not run yet.
  await put(rolloutKeys.status('default', 'reviews'), fakeStatus({ analysisConfigured: true, analysis: [] }));
  assert.match(
    (await hexmesh(['rollout', 'status', 'reviews', ...ctl()])).stdout,
    /Analysis:\s+not run yet \(rolls back after 2 failed\)/,
  );
});
