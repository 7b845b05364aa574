/**
 * Every read verb authenticates: against a control plane enforcing API auth (the default of
 * `hexmesh control`), each one run with a token from a credentials file (the current context,
 * no --control) gets an answer — never a 401. The same verbs with no token are refused, so the
 * test cannot pass on a control plane that lets anyone in.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startViewsMesh } from './mesh-views-support.ts';
import { hexmesh } from './control-support.ts';

/** Each read verb, as an operator runs it. */
const VERBS: string[][] = [
  ['services'],
  ['services', '-o', 'json'],
  ['endpoints', 'ratings'],
  ['describe', 'service', 'ratings'],
  ['get', 'httproute'],
  ['get', 'trafficpolicy'],
  ['get', 'authorizationpolicy'],
  ['get', 'service'],
  ['kv', 'ls'],
  ['stat'],
  ['stat', 'ratings'],
  ['edges'],
  ['routes', 'ratings'],
  ['rollout', 'history', 'ratings'],
  ['check'],
  ['diagnose', 'proxy', 'client-1'],
  ['tap', 'ratings', '--limit', '1'],
  ['top', 'ratings', '--once', '--for', '1s'],
  ['auth', 'whoami'],
  ['identity', 'bundle'],
  ['identity', 'rotate', 'status'],
];

const REFUSED = /\b401\b|unauthenticated|requires authentication/i;

test(
  'every read verb authenticates with the current context of a credentials file (no 401)',
  { timeout: 240_000 },
  async (t) => {
    const m = await startViewsMesh({ auth: true });
    t.after(() => m.close());
    const home = mkdtempSync(join(tmpdir(), 'hexmesh-verbs-auth-'));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const creds = join(home, 'credentials');
    writeFileSync(
      creds,
      JSON.stringify({
        contexts: [{ name: 'ops', control: m.cp.url, token: m.operatorToken }],
        current: 'ops',
      }),
      { mode: 0o600 },
    );
    await m.load(8);
    const env = { HOME: home, HEXMESH_CREDENTIALS: creds, HEXMESH_CONTROL: '', HEXMESH_TOKEN: '' };
    const failures: string[] = [];
    for (const args of VERBS) {
      // tap waits for a request: traffic flows while it runs.
      let run = true;
      const traffic =
        args[0] === 'tap'
          ? (async () => {
              while (run) await m.call('/x');
            })()
          : undefined;
      const r = await hexmesh(args, { env, timeoutMs: 30_000 });
      run = false;
      await traffic;
      const out = `${r.stdout}\n${r.stderr}`;
      // Exit 2 is a usage mistake of this test, not an answer from the control plane.
      if (REFUSED.test(r.stderr) || r.signal || r.code === 2)
        failures.push(
          `hexmesh ${args.join(' ')} (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}): ${out.slice(0, 300)}`,
        );
    }
    assert.deepEqual(failures, []);

    // Without a token the same verbs are refused: the assertion above can fail.
    const anon = { ...env, HEXMESH_CREDENTIALS: join(home, 'none.json') };
    writeFileSync(anon.HEXMESH_CREDENTIALS, JSON.stringify({ contexts: [] }));
    for (const args of [['services'], ['stat'], ['tap', 'ratings', '--limit', '1']]) {
      const r = await hexmesh(args, { env: { ...anon, HEXMESH_CONTROL: m.cp.url }, timeoutMs: 30_000 });
      assert.notEqual(r.code, 0, `hexmesh ${args.join(' ')} without a token`);
      assert.match(r.stderr, REFUSED, `hexmesh ${args.join(' ')}: ${r.stderr}`);
    }
  },
);
