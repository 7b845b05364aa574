/**
 * Issue 15: `-o wide` on every list verb — the table with more columns, as kubectl's. Each
 * verb is a real CLI process against a real control plane (catalog, KV, identity, metrics
 * scraped from real sidecars); `ps` reads a mesh state file as `hexmesh up` writes it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../support/cli.ts';
import { call, eventually } from '../control/helpers.ts';
import { startStatsMesh } from '../control/metrics-support.ts';

/** Run a list verb plain and wide: both succeed, wide's header is plain's plus `added`. */
async function wideOf(args: string[], added: string[]): Promise<{ head: string; rows: string[] }> {
  const plain = await runCli(args);
  assert.equal(plain.code, 0, `${args.join(' ')}: ${plain.stderr}`);
  const wide = await runCli([...args, '-o', 'wide']);
  assert.equal(wide.code, 0, `${args.join(' ')} -o wide: ${wide.stderr}`);
  const [plainHead] = plain.stdout.split('\n').filter((l) => !l.startsWith('mesh '));
  const [head, ...rows] = wide.stdout
    .trimEnd()
    .split('\n')
    .filter((l) => !l.startsWith('mesh '));
  const cols = (h: string) => h.split(/\s{2,}/);
  for (const c of added) {
    assert.ok(cols(head).includes(c), `${args[0]} -o wide has ${c}: ${head}`);
    assert.ok(!cols(plainHead).includes(c), `${args[0]} without -o wide has no ${c}: ${plainHead}`);
  }
  for (const c of cols(plainHead)) assert.ok(cols(head).includes(c), `${args[0]} -o wide keeps ${c}`);
  return { head, rows };
}

test('issue 15: -o wide on every list verb adds columns', { timeout: 120_000 }, async () => {
  const m = await startStatsMesh({ identity: {} });
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-wide-'));
  const c = ['--control', m.cp.url];
  try {
    await m.load(20);
    await eventually('the load in the views', async () => {
      const r = await call(m.cp.url, 'GET', '/v1/stats/services?service=ratings');
      return r.body.services?.[0]?.requests === 20;
    });

    const services = await wideOf(['services', ...c], ['SUCCESS', 'RPS', 'P99']);
    assert.match(
      services.rows.find((r) => r.startsWith('ratings'))!,
      /\s90\.00%\s/,
    );

    const stat = await wideOf(['stat', 'ratings', '-w', '10m', ...c], ['REQUESTS', 'STALE']);
    assert.match(stat.rows[0], /\s20\s+0$/);
    const edges = await wideOf(['edges', '-w', '10m', ...c], ['REQUESTS']);
    assert.match(edges.rows[0], /^default\s+client\s+ratings\s.*\s20$/);
    const routes = await wideOf(['routes', 'ratings', '-w', '10m', ...c], ['SERVICE', 'REQUESTS']);
    assert.match(routes.rows[0], /\sratings\s+20$/);

    assert.equal((await runCli(['kv', 'put', 'app/greeting', 'héllo', ...c])).code, 0);
    const kv = await wideOf(['kv', 'ls', 'app/', ...c], ['CREATEREVISION', 'BYTES']);
    assert.match(kv.rows[0], /^app\/greeting\s+\d+\s+\d+\s+6\s+héllo$/); // 6 bytes in UTF-8

    const joinToken = await runCli([
      'identity',
      'token',
      'create',
      '--namespace',
      'default',
      '--service-account',
      'web',
      ...c,
    ]);
    assert.equal(joinToken.code, 0, joinToken.stderr);
    const joins = await wideOf(['identity', 'token', 'list', ...c], ['CREATED']);
    assert.match(joins.rows[0], /\sweb\s.*\s\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    await wideOf(['identity', 'certificates', ...c], ['ISSUED']);

    const tok = await m.cp.cp.tokens.create({ name: 'ci', role: 'viewer' });
    assert.ok(tok.token);
    const tokens = await wideOf(['auth', 'token', 'list', ...c], ['CREATED']);
    assert.ok(
      tokens.rows.some((r) => /^\S+\s+ci\s+viewer\s.*Z$/.test(r)),
      tokens.rows.join('\n'),
    );

    // A Rollout's history as its controller writes it (KV), one revision finished.
    const history = [
      {
        revision: 1,
        changes: [],
        startedAt: 1_700_000_000_000,
        finishedAt: 1_700_000_090_000,
        outcome: 'Promoted',
        template: { labels: { version: 'v2' } },
      },
    ];
    const put = await runCli(['kv', 'put', 'rollouts/default/web/history', JSON.stringify(history), ...c]);
    assert.equal(put.code, 0, put.stderr);
    const hist = await wideOf(['rollout', 'history', 'web', ...c], ['FINISHED', 'DURATION', 'VERSION']);
    assert.match(hist.rows[0], /^1\s+\S+\s+Promoted\s+2023-11-14T22:14:50\.000Z\s+90s\s+v2$/);

    const creds = join(dir, 'credentials');
    writeFileSync(
      creds,
      JSON.stringify({ contexts: [{ name: 'lab', control: m.cp.url, token: 'hxt.x.y' }], current: 'lab' }),
      { mode: 0o600 },
    );
    const ctx = await wideOf(['context', 'list', '--credentials', creds], ['TOKEN', 'FILE']);
    assert.equal(
      ctx.rows[0]
        .split(/\s{2,}/)
        .slice(-2)
        .join('|'),
      `set|${creds}`,
    );

    // ps reads the state file `hexmesh up` keeps in the data dir.
    const instance = {
      id: 'web-1',
      service: 'web',
      namespace: 'shop',
      version: 'v2',
      labels: { 'hexmesh.io/revision': '3' },
      state: 'running',
      health: 'passing',
      appPort: 18080,
      inboundPort: 18081,
      outboundPort: 18082,
      adminPort: 18083,
      appPid: 4242,
      sidecarPid: 4243,
      restarts: 0,
      startedAt: Date.now() - 5000,
      logFile: join(dir, 'web-1.log'),
    };
    writeFileSync(
      join(dir, 'state.json'),
      JSON.stringify({
        file: 'mesh.yaml',
        phase: 'running',
        supervisorPid: 999999,
        controlUrl: m.cp.url,
        controlPid: undefined,
        startedAt: Date.now(),
        updatedAt: Date.now(),
        instances: [instance],
      }),
    );
    const ps = await wideOf(
      ['ps', '--data-dir', dir],
      ['NAMESPACE', 'REVISION', 'APP-PID', 'SIDECAR-PID', 'LOG'],
    );
    assert.match(
      ps.rows[0],
      new RegExp(`^web\\s+web-1\\s+v2\\s.*\\sshop\\s+3\\s+4242\\s+4243\\s+${join(dir, 'web-1.log')}$`),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await m.close();
  }
});
