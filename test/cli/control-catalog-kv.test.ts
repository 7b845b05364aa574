/** `hexmesh services | endpoints | register | deregister | kv ...` against a real control plane, through the real CLI. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, eventually, startCp, type TestCp } from '../control/helpers.ts';
import { Running, hexmesh } from './control-support.ts';

let cp: TestCp;
const ctl = () => ['--control', cp.url];

before(async () => {
  cp = await startCp();
});
after(async () => {
  await cp.close();
});

test('register --once, services and endpoints (table and json), deregister; unknown service exits 4', async () => {
  const a = await hexmesh([
    'register',
    '--service',
    'web',
    '--address',
    '127.0.0.1',
    '--port',
    '8081',
    '--label',
    'version=v1',
    '--ttl',
    '5m',
    '--once',
    ...ctl(),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /^registered web\/127\.0\.0\.1-8081 \(lease \d+, ttl 5m, status passing\)$/m);
  const b = await hexmesh([
    'register',
    '--service',
    'web',
    '--address',
    '127.0.0.1',
    '--port',
    '8082',
    '--id',
    'web-2',
    '--label',
    'version=v2',
    '--check',
    'tcp',
    '--ttl',
    '5m',
    '--once',
    ...ctl(),
  ]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /status critical/);
  assert.match(b.stderr, /nothing runs the checks/);

  const s = await hexmesh(['services', ...ctl()]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^SERVICE\s+NAMESPACE\s+INSTANCES\s+PASSING\/WARNING\/CRITICAL\s+VERSIONS$/m);
  assert.match(s.stdout, /^web\s+default\s+2\s+1\/0\/1\s+v1,v2$/m);
  const sj = JSON.parse((await hexmesh(['services', '-o', 'json', ...ctl()])).stdout);
  assert.deepEqual(sj, [
    {
      name: 'web',
      namespace: 'default',
      instances: 2,
      passing: 1,
      warning: 0,
      critical: 1,
      versions: ['v1', 'v2'],
    },
  ]);

  const e = await hexmesh(['endpoints', 'web', ...ctl()]);
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stdout, /^ID\s+ADDRESS\s+MESH PORT\s+VERSION\s+STATUS\s+OUTPUT$/m);
  assert.match(e.stdout, /^127\.0\.0\.1-8081\s+127\.0\.0\.1:8081\s+-\s+v1\s+passing$/m);
  assert.match(e.stdout, /^web-2\s+127\.0\.0\.1:8082\s+-\s+v2\s+critical/m);
  const ej = JSON.parse((await hexmesh(['endpoints', 'web', '--passing', '-o', 'json', ...ctl()])).stdout);
  assert.deepEqual(
    ej.map((i: { id: string }) => i.id),
    ['127.0.0.1-8081'],
  );

  const none = await hexmesh(['endpoints', 'nope', ...ctl()]);
  assert.equal(none.code, 4);
  assert.equal(none.stderr, 'hexmesh endpoints: service "nope" not found\n');

  const d = await hexmesh(['deregister', 'web', 'web-2', ...ctl()]);
  assert.equal(d.code, 0, d.stderr);
  const left = await call(cp.url, 'GET', '/v1/catalog/service/default/web');
  assert.deepEqual(
    left.body.map((i: { id: string }) => i.id),
    ['127.0.0.1-8081'],
  );
});

test('register in the foreground: keeps the lease alive past its TTL, runs checks, deregisters on SIGTERM', async () => {
  const app = await import('node:net').then((net) => {
    const srv = net.createServer((s) => s.end());
    return new Promise<import('node:net').Server>((r) => srv.listen(0, '127.0.0.1', () => r(srv)));
  });
  const port = (app.address() as { port: number }).port;
  const r = new Running([
    'register',
    '--service',
    'db',
    '--address',
    '127.0.0.1',
    '--port',
    String(port),
    '--check',
    'tcp',
    '--ttl',
    '600ms',
    ...ctl(),
  ]);
  try {
    await r.waitFor(/registered db\/127\.0\.0\.1-\d+/);
    // The tcp check passes → reported; and the 600 ms lease is kept alive well past its TTL.
    await eventually('db passing', async () => {
      const a = await call(cp.url, 'GET', '/v1/catalog/service/default/db');
      return a.body.length === 1 && a.body[0].status === 'passing';
    });
    await new Promise((res) => setTimeout(res, 1500));
    const still = await call(cp.url, 'GET', '/v1/catalog/service/default/db');
    assert.equal(still.body.length, 1, `instance lapsed: ${r.stderr}`);
    const exit = await r.stop('SIGTERM');
    assert.equal(exit.code, 0, r.stderr);
    assert.match(r.stdout, /deregistered db\//);
    const gone = await call(cp.url, 'GET', '/v1/catalog/service/default/db');
    assert.deepEqual(gone.body, []);
  } finally {
    await r.stop('SIGKILL');
    app.close();
  }
});

test('kv put (arg and stdin), get, ls, cas conflict exit 5, delete, missing key exit 4', async () => {
  const p = await hexmesh(['kv', 'put', 'app/maxconn', '100', ...ctl()]);
  assert.equal(p.code, 0, p.stderr);
  const rev = Number(/modRevision (\d+)/.exec(p.stdout)![1]);
  const s = await hexmesh(['kv', 'put', 'app/config', '-', ...ctl()], { input: '{"a": 1}\nline two\n' });
  assert.equal(s.code, 0, s.stderr);
  await hexmesh(['kv', 'put', 'apple', 'x', ...ctl()]);

  const g = await hexmesh(['kv', 'get', 'app/config', ...ctl()]);
  assert.equal(g.stdout, '{"a": 1}\nline two\n');
  const gj = JSON.parse((await hexmesh(['kv', 'get', 'app/maxconn', '-o', 'json', ...ctl()])).stdout);
  assert.deepEqual([gj.key, gj.value, gj.modRevision], ['app/maxconn', '100', rev]);

  const ls = JSON.parse((await hexmesh(['kv', 'ls', 'app/', '-o', 'json', ...ctl()])).stdout);
  assert.deepEqual(
    ls.map((e: { key: string }) => e.key),
    ['app/config', 'app/maxconn'],
  );
  const lt = await hexmesh(['kv', 'ls', 'app/', ...ctl()]);
  assert.match(lt.stdout, /^KEY\s+MODREVISION\s+VALUE\n/);
  assert.match(lt.stdout, /^app\/config\s+\d+\s+\{"a": 1\}\\nline two\\n$/m);

  const bad = await hexmesh(['kv', 'put', 'app/maxconn', '200', '--cas', String(rev - 1), ...ctl()]);
  assert.equal(bad.code, 5);
  assert.match(
    bad.stderr,
    new RegExp(`conflict: key "app/maxconn" is at modRevision ${rev}, not ${rev - 1}; nothing written`),
  );
  const good = await hexmesh(['kv', 'put', 'app/maxconn', '200', '--cas', String(rev), ...ctl()]);
  assert.equal(good.code, 0, good.stderr);
  const create = await hexmesh(['kv', 'put', 'app/maxconn', '300', '--cas', '0', ...ctl()]);
  assert.equal(create.code, 5, 'cas 0 = create only');
  assert.equal((await hexmesh(['kv', 'get', 'app/maxconn', ...ctl()])).stdout, '200\n');

  const del = await hexmesh(['kv', 'delete', 'app/', '--recurse', ...ctl()]);
  assert.equal(del.stdout, 'deleted 2 keys\n');
  const miss = await hexmesh(['kv', 'get', 'app/maxconn', ...ctl()]);
  assert.equal(miss.code, 4);
  assert.equal(miss.stderr, 'hexmesh kv get: key "app/maxconn" not found\n');
  assert.equal((await hexmesh(['kv', 'delete', 'app/maxconn', ...ctl()])).code, 4);
  assert.equal((await hexmesh(['kv', 'get', 'apple', ...ctl()])).stdout, 'x\n', 'app/ did not delete apple');
  assert.equal((await hexmesh(['kv', 'put', 'k', 'v', '--cas', 'abc', ...ctl()])).code, 2);
});

test('kv watch prints the current value, then each change (blocking queries), and stops after --count', async () => {
  await call(cp.url, 'PUT', '/v1/kv/watch/me', 'one');
  const w = new Running(['kv', 'watch', 'watch/me', '--count', '3', '--wait', '10s', ...ctl()]);
  try {
    await w.waitFor(/watch\/me = one/);
    await call(cp.url, 'PUT', '/v1/kv/other', 'noise'); // moves the index, not this key
    await call(cp.url, 'PUT', '/v1/kv/watch/me', 'two');
    await w.waitFor(/watch\/me = two/);
    await call(cp.url, 'DELETE', '/v1/kv/watch/me');
    const exit = await Promise.race([
      w.exited,
      new Promise<never>((_, rej) =>
        setTimeout(() => rej(new Error(`no exit: ${w.stdout} ${w.stderr}`)), 10_000),
      ),
    ]);
    assert.equal(exit.code, 0, w.stderr);
    assert.deepEqual(
      w.stdout
        .trimEnd()
        .split('\n')
        .map((l) => l.replace(/ \(modRevision \d+\)/, '')),
      ['watch/me = one', 'watch/me = two', 'watch/me absent'],
    );
  } finally {
    await w.stop('SIGKILL');
  }
});
