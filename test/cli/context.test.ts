/**
 * `hexmesh up` leaves the CLI able to reach the mesh it started: it adds a context (URL +
 * admin token) to the user's credentials file ($HOME/.hexmesh/credentials) and makes it
 * current, so `hexmesh services` works with no flag or export; `hexmesh context` lists and
 * switches contexts. Runs with a temporary HOME.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { hexmesh } from './control-support.ts';

const APP = `import http from 'node:http';
http.createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
`;

test('hexmesh up adds a current context to ~/.hexmesh/credentials; services works without an export; context list/use/current', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'hexmesh-home-'));
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-ctxmesh-'));
  const env = { HOME: home, HEXMESH_CREDENTIALS: '', HEXMESH_CONTROL: '', HEXMESH_TOKEN: '' };
  t.after(async () => {
    await hexmesh(['down', '--data-dir', join(dir, '.hexmesh'), '--timeout', '20'], {
      env,
      timeoutMs: 40_000,
    });
    rmSync(home, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, 'app.mjs'), APP);
  writeFileSync(
    join(dir, 'mesh.yaml'),
    'services:\n  - name: pinger\n    command: node\n    args: [app.mjs]\n    healthCheck: { type: http }\n',
  );
  const name = basename(dir);
  const up = await hexmesh(
    ['up', '-f', join(dir, 'mesh.yaml'), '-d', '--control-listen', '127.0.0.1:0', '--timeout', '60s'],
    { env, timeoutMs: 120_000 },
  );
  assert.equal(up.code, 0, `stdout: ${up.stdout}\nstderr: ${up.stderr}`);
  const credsPath = join(home, '.hexmesh', 'credentials');
  assert.match(up.stdout, new RegExp(`context ${name} \\(http://127\\.0\\.0\\.1:\\d+\\) is current`));
  // The hint needs no flags once the context is current.
  assert.match(up.stdout, /^ {2}hexmesh services$/m, up.stdout);
  assert.equal(statSync(credsPath).mode & 0o777, 0o600);
  const file = JSON.parse(readFileSync(credsPath, 'utf8')) as {
    current: string;
    contexts: { name: string; control: string; token: string }[];
  };
  assert.equal(file.current, name);

  // The quick start's verb, with no --control, --credentials or export.
  const services = await hexmesh(['services'], { env });
  assert.equal(services.code, 0, services.stderr);
  assert.match(services.stdout, /pinger/);

  const list = await hexmesh(['context'], { env });
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`^\\*\\s+${name}\\s+http://127`, 'm'));
  assert.doesNotMatch(list.stdout, /hxat\.|token/i, 'tokens are never printed');

  // A second context (another control plane) switched to: the verbs follow it.
  writeFileSync(
    credsPath,
    JSON.stringify({
      ...file,
      contexts: [...file.contexts, { name: 'elsewhere', control: 'http://127.0.0.1:9', token: 'x' }],
    }),
    { mode: 0o600 },
  );
  const use = await hexmesh(['context', 'use', 'elsewhere'], { env });
  assert.equal(use.code, 0, use.stderr);
  const cur = await hexmesh(['context', 'current'], { env });
  assert.equal(cur.stdout, 'elsewhere\thttp://127.0.0.1:9\n');
  const away = await hexmesh(['services'], { env });
  assert.notEqual(away.code, 0, 'services now goes to the unreachable context');

  const missing = await hexmesh(['context', 'use', 'nope'], { env });
  assert.equal(missing.code, 4);
  assert.match(missing.stderr, /no context "nope".*have: .*elsewhere/);

  assert.equal((await hexmesh(['context', 'use', name], { env })).code, 0);
  const back = await hexmesh(['services', '-o', 'json'], { env });
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stdout, /pinger/);
  const json = await hexmesh(['context', 'list', '-o', 'json'], { env });
  assert.deepEqual(
    (JSON.parse(json.stdout) as { contexts: { name: string }[] }).contexts.map((c) => c.name),
    [name, 'elsewhere'],
  );
});
