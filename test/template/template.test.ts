/**
 * `hexmesh template` end to end: a real control plane, the real CLI, a real HAProxy checking
 * the rendered config; re-render on a catalog change within the quiet period, reload command,
 * render errors keep the last good file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { call, eventually, startCp, type TestCp } from '../control/helpers.ts';
import { Running, hexmesh } from '../cli/control-support.ts';

const run = promisify(execFile);
let cp: TestCp;
let dir: string;
const ctl = () => ['--control', cp.url];

const HAPROXY = `global
  maxconn {{ "haproxy/maxconn" | keyOrDefault: "256" }}

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s

frontend fe
  bind 127.0.0.1:{{ "haproxy/port" | key }}
  default_backend web
{% assign web = "web" | service %}
backend web
  balance roundrobin
{%- for i in web %}
  server {{ i.id }} {{ i.address }}:{{ i.port }} check
{%- endfor %}
`;

async function haproxyCheck(file: string): Promise<{ code: number; output: string }> {
  try {
    const r = await run('haproxy', ['-c', '-f', file]);
    return { code: 0, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr };
  }
}

const register = (id: string, port: number) =>
  call(cp.url, 'PUT', '/v1/catalog/register', { id, service: 'web', address: '127.0.0.1', port, ttl: '5m' });

before(async () => {
  cp = await startCp();
  dir = await mkdtemp(join(tmpdir(), 'hexmesh-tmpl-'));
  await writeFile(join(dir, 'haproxy.cfg.tmpl'), HAPROXY);
});
after(async () => {
  await cp.close();
  await rm(dir, { recursive: true, force: true });
});

test('renders an HAProxy config haproxy -c accepts; a new instance re-renders within the quiet period and runs the reload command', async () => {
  await call(cp.url, 'PUT', '/v1/kv/haproxy/port', '18099');
  assert.equal((await register('web-1', 8081)).status, 200);
  assert.equal((await register('web-2', 8082)).status, 200);
  // A critical instance is not rendered (service = passing instances only).
  await call(cp.url, 'PUT', '/v1/catalog/register', {
    id: 'web-sick',
    service: 'web',
    address: '127.0.0.1',
    port: 8089,
    ttl: '5m',
    checks: [{ name: 'c', type: 'tcp' }],
  });
  const out = join(dir, 'haproxy.cfg');
  const log = join(dir, 'reloads.log');
  const t = new Running([
    'template',
    '-t',
    `${join(dir, 'haproxy.cfg.tmpl')}:${out}:echo reloaded >> ${log}`,
    '--wait',
    '200ms:800ms',
    ...ctl(),
  ]);
  try {
    await t.waitFor(/reload command succeeded/);
    const first = await readFile(out, 'utf8');
    assert.match(first, /maxconn 256/);
    assert.match(first, /bind 127\.0\.0\.1:18099/);
    assert.match(first, /server web-1 127\.0\.0\.1:8081 check\n\s+server web-2 127\.0\.0\.1:8082 check\n/);
    assert.doesNotMatch(first, /web-sick/);
    const check = await haproxyCheck(out);
    assert.equal(check.code, 0, `haproxy -c refused the config:\n${check.output}\n${first}`);
    assert.equal(await readFile(log, 'utf8'), 'reloaded\n');

    // A new instance: re-rendered (generous bound: the quiet period max is 800 ms).
    const t0 = Date.now();
    await register('web-3', 8083);
    await eventually(
      'web-3 rendered',
      async () => (await readFile(out, 'utf8')).includes('server web-3 127.0.0.1:8083'),
      8000,
    );
    assert.ok(Date.now() - t0 < 8000);
    await eventually(
      'reload ran again',
      async () => (await readFile(log, 'utf8')) === 'reloaded\nreloaded\n',
      5000,
    );
    assert.equal((await haproxyCheck(out)).code, 0);

    // A change the template did not read, and one that leaves the output equal: no write, no reload.
    await call(cp.url, 'PUT', '/v1/kv/unrelated', 'x');
    await call(cp.url, 'PUT', '/v1/catalog/status/default/web/web-sick', {
      status: 'critical',
      output: 'still down',
    });
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await readFile(log, 'utf8'), 'reloaded\nreloaded\n');

    // A render error (required key deleted) keeps the last good file; the key's return fixes it.
    const good = await readFile(out, 'utf8');
    await call(cp.url, 'DELETE', '/v1/kv/haproxy/port');
    await eventually(
      'render error reported',
      async () => /key "haproxy\/port" not found.*keeping the last good/.test(t.stderr),
      5000,
    );
    assert.equal(await readFile(out, 'utf8'), good);
    await call(cp.url, 'PUT', '/v1/kv/haproxy/port', '18100');
    await eventually(
      're-rendered with the new port',
      async () => (await readFile(out, 'utf8')).includes('bind 127.0.0.1:18100'),
      5000,
    );
    await call(cp.url, 'PUT', '/v1/kv/haproxy/maxconn', '1024');
    await eventually(
      'maxconn from KV',
      async () => (await readFile(out, 'utf8')).includes('maxconn 1024'),
      5000,
    );
    assert.equal((await haproxyCheck(out)).code, 0);

    const exit = await t.stop('SIGTERM');
    assert.equal(exit.code, 0, t.stderr);
  } finally {
    await t.stop('SIGKILL');
  }
});

test('--once renders and exits 0; a syntax error exits 3 naming file and line; a failed render exits 1', async () => {
  const out = join(dir, 'once.cfg');
  const r = await hexmesh(['template', '-t', `${join(dir, 'haproxy.cfg.tmpl')}:${out}`, '--once', ...ctl()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(await readFile(out, 'utf8'), /server web-1 /);

  await writeFile(join(dir, 'bad.tmpl'), 'ok\n{% for x in %}\n{{ x | nosuchfilter }}\n');
  const bad = await hexmesh([
    'template',
    '-t',
    `${join(dir, 'bad.tmpl')}:${join(dir, 'bad.out')}`,
    '--once',
    ...ctl(),
  ]);
  assert.equal(bad.code, 3);
  assert.match(bad.stderr, /bad\.tmpl.*line:2/);

  await writeFile(join(dir, 'missing.tmpl'), '{{ "no/such/key" | key }}\n');
  const miss = await hexmesh([
    'template',
    '-t',
    `${join(dir, 'missing.tmpl')}:${join(dir, 'missing.out')}`,
    '--once',
    ...ctl(),
  ]);
  assert.equal(miss.code, 1);
  assert.match(miss.stderr, /key "no\/such\/key" not found/);

  const usage = await hexmesh(['template', '-t', 'just-one-part', '--once', ...ctl()]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /-t must be <template>:<output>/);
});
