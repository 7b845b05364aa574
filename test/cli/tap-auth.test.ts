/**
 * tap and top stream from the control plane through the CLI's one authenticated client:
 * with API auth enforced (the default of `hexmesh control`) they take the token from
 * `HEXMESH_TOKEN` or from a credentials file, and without one they say why they were refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startViewsMesh } from './mesh-views-support.ts';
import { Running } from './control-support.ts';

test(
  'tap and top authenticate with HEXMESH_TOKEN and with --credentials; refused without a token',
  { timeout: 90_000 },
  async (t) => {
    const m = await startViewsMesh({ auth: true });
    t.after(() => m.close());
    const home = mkdtempSync(join(tmpdir(), 'hexmesh-tap-auth-'));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const creds = join(home, 'credentials.json');
    writeFileSync(
      creds,
      JSON.stringify({ contexts: [{ name: 't', control: m.cp.url, token: m.operatorToken }], current: 't' }),
      { mode: 0o600 },
    );
    // HOME points at an empty dir so no credentials of the machine's user are picked up.
    const base = { HOME: home, HEXMESH_CONTROL: m.cp.url, HEXMESH_CREDENTIALS: '', HEXMESH_TOKEN: '' };

    const refused = new Running(['tap', 'ratings', '--limit', '1'], base);
    t.after(() => refused.child.kill());
    const r = await refused.exited;
    assert.notEqual(r.code, 0);
    assert.match(refused.stderr, /hexmesh tap: .*(401|token|unauthenticated)/i, refused.stderr);

    const load = async (ms: number) => {
      const end = Date.now() + ms;
      let i = 0;
      while (Date.now() < end) await m.call(`/t/${i++ % 2}`);
    };

    const tap = new Running(['tap', 'ratings', '--limit', '2', '-o', 'json'], {
      ...base,
      HEXMESH_TOKEN: m.operatorToken!,
    });
    t.after(() => tap.child.kill());
    await tap.waitFor(/"type":"start"/, 30_000);
    await new Promise((res) => setTimeout(res, 300)); // the fan-in attaches to both proxies
    await load(1500);
    const tr = await tap.exited;
    assert.equal(tr.code, 0, `stdout: ${tap.stdout}\nstderr: ${tap.stderr}`);
    const reqs = tap.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string })
      .filter((l) => l.type === 'request');
    assert.equal(reqs.length, 2);

    const top = new Running(
      ['top', 'ratings', '--once', '--for', '4s', '-o', 'json', '--credentials', creds],
      base,
    );
    t.after(() => top.child.kill());
    // Load until top has watched its --for and exited, however long its start and attach take.
    const end = Date.now() + 60_000;
    while (top.child.exitCode === null && top.child.signalCode === null && Date.now() < end) await load(200);
    const te = await top.exited;
    assert.equal(te.code, 0, top.stderr);
    const view = JSON.parse(top.stdout) as { rows: { path: string }[] };
    assert.ok(
      view.rows.some((row) => row.path.startsWith('/t/')),
      top.stdout,
    );
  },
);
