/**
 * `hexmesh check` (the real CLI) against a real control plane and sidecars: passes on a
 * healthy mesh, names a proxy that rejected its config, and fails with one line when the
 * control plane is dead.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../support/cli.ts';
import { startViewsMesh, until } from './mesh-views-support.ts';

const MINE = ['control-plane', 'store', 'proxies-in-sync', 'rejected-configs', 'clock-skew'];

test(
  'check: healthy mesh passes; a nacking proxy is named with its reason; a dead control plane fails',
  { timeout: 60_000 },
  async (t) => {
    const m = await startViewsMesh();
    t.after(() => m.close());
    const ok = await runCli(['check', '-o', 'json', '--control', m.cp.url]);
    const results = JSON.parse(ok.stdout) as { name: string; status: string; message: string }[];
    for (const name of MINE) {
      const r = results.find((x) => x.name === name);
      assert.equal(r?.status, 'ok', `${name}: ${JSON.stringify(r)}`);
    }
    assert.match(results.find((x) => x.name === 'proxies-in-sync')!.message, /3 proxies in sync/);
    const table = await runCli(['check', '--control', m.cp.url]);
    assert.match(table.stdout, /^\[ok\] {3}store: \w+ healthy at revision \d+$/m);

    await m.poison();
    await until(() => m.client.client.lastError, 5000, 'the client sidecar to refuse the update');
    const bad = await runCli(['check', '-o', 'json', '--control', m.cp.url]);
    assert.equal(bad.code, 1, bad.stderr);
    const after = JSON.parse(bad.stdout) as { name: string; status: string; message: string }[];
    const sync = after.filter((x) => x.name === 'proxies-in-sync' && x.status !== 'ok');
    assert.ok(
      sync.some(
        (x) =>
          x.status === 'fail' &&
          /proxy client-1 \(default\/client\).*rejected version \d+: .*bogus/s.test(x.message),
      ),
      JSON.stringify(sync),
    );
    const rejected = after.find((x) => x.name === 'rejected-configs')!;
    assert.equal(rejected.status, 'fail');
    assert.match(rejected.message, /client-1/);

    const dead = await runCli(['check', '--control', 'http://127.0.0.1:1']);
    assert.equal(dead.code, 1);
    assert.match(
      dead.stdout,
      /^\[fail\] control-plane: cannot reach control plane at http:\/\/127\.0\.0\.1:1/m,
    );
    assert.equal(dead.stdout.trim().split('\n').length, 1, 'one failure, not one per check');
  },
);
