import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCp, call, service, route, type TestCp } from './helpers.ts';

let t: TestCp;
before(async () => {
  t = await startCp();
});
after(() => t.close());

test('PUT creates (201) then replaces (200); GET shows resourceVersion and creationTimestamp', async () => {
  const a = await call(t.url, 'PUT', '/v1/resources/Service/default/crud', service('crud'));
  assert.equal(a.status, 201);
  assert.equal(a.body.metadata.resourceVersion, String(a.index));
  assert.ok(a.body.metadata.creationTimestamp);
  const g = await call(t.url, 'GET', '/v1/resources/Service/default/crud');
  assert.equal(g.status, 200);
  assert.deepEqual(g.body, a.body);
  const changed = service('crud');
  changed.spec.ports[0].port = 8080;
  const b = await call(t.url, 'PUT', '/v1/resources/Service/default/crud', changed);
  assert.equal(b.status, 200);
  assert.equal(b.body.spec.ports[0].port, 8080);
  assert.equal(b.body.metadata.creationTimestamp, a.body.metadata.creationTimestamp, 'creation time kept');
  assert.ok(Number(b.body.metadata.resourceVersion) > Number(a.body.metadata.resourceVersion));
  const list = await call(t.url, 'GET', '/v1/resources?kind=Service&namespace=default');
  assert.ok(list.body.some((r: any) => r.metadata.name === 'crud'));
  const d = await call(t.url, 'DELETE', '/v1/resources/Service/default/crud');
  assert.equal(d.status, 200);
  const gone = await call(t.url, 'GET', '/v1/resources/Service/default/crud');
  assert.equal(gone.status, 404);
  assert.equal(gone.body.error.code, 'HEXMESH_ERR_NOT_FOUND');
  assert.ok(gone.index! >= d.index!, '404 carries the index for a blocking retry');
});

test('PUT accepts YAML and a body without namespace; a body contradicting the URL is 400', async () => {
  const yaml =
    'apiVersion: hexmesh.io/v1alpha1\nkind: Service\nmetadata: {name: yml}\nspec:\n  ports: [{port: 81}]\n';
  const a = await call(t.url, 'PUT', '/v1/resources/Service/default/yml', yaml, {
    'content-type': 'application/yaml',
  });
  assert.equal(a.status, 201, JSON.stringify(a.body));
  assert.equal(a.body.metadata.namespace, 'default');
  const b = await call(t.url, 'PUT', '/v1/resources/Service/default/other', service('yml'));
  assert.equal(b.status, 400);
  assert.match(b.body.error.message, /URL names Service default\/other/);
});

test('resourceVersion makes writes compare-and-set: stale PUT and DELETE are 409 and change nothing', async () => {
  const a = await call(t.url, 'PUT', '/v1/resources/Service/default/cas', service('cas'));
  const v1 = a.body.metadata.resourceVersion;
  const upd = { ...service('cas'), metadata: { name: 'cas', namespace: 'default', resourceVersion: v1 } };
  upd.spec = { ports: [{ port: 90, protocol: 'http' }] };
  const b = await call(t.url, 'PUT', '/v1/resources/Service/default/cas', upd);
  assert.equal(b.status, 200);
  // Same stale version again: conflict.
  const stale = { ...upd, spec: { ports: [{ port: 91, protocol: 'http' }] } };
  const c = await call(t.url, 'PUT', '/v1/resources/Service/default/cas', stale);
  assert.equal(c.status, 409);
  assert.equal(c.body.error.code, 'HEXMESH_ERR_CONFLICT');
  const g = await call(t.url, 'GET', '/v1/resources/Service/default/cas');
  assert.equal(g.body.spec.ports[0].port, 90);
  const d = await call(t.url, 'DELETE', `/v1/resources/Service/default/cas?resourceVersion=${v1}`);
  assert.equal(d.status, 409);
  const e = await call(
    t.url,
    'DELETE',
    `/v1/resources/Service/default/cas?resourceVersion=${b.body.metadata.resourceVersion}`,
  );
  assert.equal(e.status, 200);
});

test('apply: created, unchanged, configured; routes to a missing Service are warnings', async () => {
  const docs = [service('ap-a'), route('ap-r', 'ap-a'), route('ap-orphan', 'nowhere')];
  const a = await call(t.url, 'POST', '/v1/apply', docs);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.deepEqual(
    a.body.results.map((r: any) => r.action),
    ['created', 'created', 'created'],
  );
  // The orphan's parent and its backend are both missing: one warning each (issue 10).
  assert.equal(a.body.warnings.length, 2, JSON.stringify(a.body.warnings));
  assert.match(a.body.warnings[0], /ap-orphan.*Service default\/nowhere does not exist/);
  assert.match(a.body.warnings[1], /ap-orphan: rules\[0\] backendRef names unknown service default\/nowhere/);
  const b = await call(t.url, 'POST', '/v1/apply', docs);
  assert.deepEqual(
    b.body.results.map((r: any) => r.action),
    ['unchanged', 'unchanged', 'unchanged'],
  );
  assert.equal(b.body.results[0].resourceVersion, a.body.results[0].resourceVersion);
  const yaml = [
    'apiVersion: hexmesh.io/v1alpha1\nkind: Service\nmetadata: {name: ap-a}\nspec: {ports: [{port: 82}]}',
    'apiVersion: hexmesh.io/v1alpha1\nkind: Service\nmetadata: {name: ap-b}\nspec: {ports: [{port: 83}]}',
  ].join('\n---\n');
  const c = await call(t.url, 'POST', '/v1/apply', yaml, { 'content-type': 'application/yaml' });
  assert.deepEqual(
    c.body.results.map((r: any) => `${r.name}:${r.action}`),
    ['ap-a:configured', 'ap-b:created'],
  );
});

test('invalid apply lists every problem by path and writes nothing', async () => {
  const before = await call(t.url, 'GET', '/v1/resources');
  const bad = [
    service('iv-ok'),
    { ...service('iv-bad'), spec: { ports: [{ port: 70000 }], extra: 1 } },
    { ...route('iv-r', 'iv-ok'), metadata: { name: 'Not_A_Name' } },
    { apiVersion: 'x/v1', kind: 'Frobnicator', metadata: { name: 'f' } },
  ];
  const a = await call(t.url, 'POST', '/v1/apply', bad);
  assert.equal(a.status, 400);
  assert.equal(a.body.error.code, 'HEXMESH_ERR_CONFIG_INVALID');
  const paths = a.body.error.problems.map((p: any) => p.path);
  assert.ok(paths.includes('[1].spec.ports[0].port'), paths.join());
  assert.ok(paths.includes('[1].spec'), paths.join()); // unknown field "extra"
  assert.ok(paths.includes('[2].metadata.name'), paths.join());
  assert.ok(paths.includes('[3].kind'), paths.join());
  const unknown = a.body.error.problems.find((p: any) => p.path === '[3].kind');
  assert.match(
    unknown.message,
    /unknown kind "Frobnicator" \(known kinds: Service, HTTPRoute, GRPCRoute, TrafficPolicy, [A-Za-z, ]+\)/,
  );
  const after = await call(t.url, 'GET', '/v1/resources');
  assert.equal(after.body.length, before.body.length, 'nothing written');
  assert.equal(after.index, before.index, 'store revision unchanged');
});

test('apply with a stale resourceVersion anywhere is 409 and writes nothing', async () => {
  const a = await call(t.url, 'POST', '/v1/apply', [service('cf-1')]);
  const rv = Number(a.body.results[0].resourceVersion);
  const before = await call(t.url, 'GET', '/v1/health');
  const r = await call(t.url, 'POST', '/v1/apply', [
    service('cf-2'),
    { ...service('cf-1'), metadata: { name: 'cf-1', resourceVersion: String(rv - 1) } },
  ]);
  assert.equal(r.status, 409);
  assert.equal((await call(t.url, 'GET', '/v1/resources/Service/default/cf-2')).status, 404);
  const afterH = await call(t.url, 'GET', '/v1/health');
  assert.equal(afterH.body.store.revision, before.body.store.revision);
});

test('unknown kind in the URL is 400 naming the known kinds; unknown endpoint 404; wrong method 405', async () => {
  const a = await call(t.url, 'GET', '/v1/resources/Gadget/default/x');
  assert.equal(a.status, 400);
  assert.match(a.body.error.message, /known kinds: Service, HTTPRoute/);
  assert.equal((await call(t.url, 'GET', '/v1/nothing')).status, 404);
  const m = await call(t.url, 'POST', '/v1/resources/Service/default/x', service('x'));
  assert.equal(m.status, 405);
  assert.equal(m.headers.get('allow'), 'GET, PUT, DELETE');
});

test('bad input: invalid YAML, garbage JSON, empty body, oversize body', async () => {
  const y = await call(t.url, 'POST', '/v1/apply', 'kind: Service\n  metadata: [unclosed\n', {
    'content-type': 'application/yaml',
  });
  assert.equal(y.status, 400);
  assert.match(y.body.error.problems[0].path, /line \d+, column \d+/);
  const j = await call(t.url, 'POST', '/v1/apply', '{"kind": "Service",', {
    'content-type': 'application/json',
  });
  assert.equal(j.status, 400);
  assert.equal(j.body.error.code, 'HEXMESH_ERR_BAD_REQUEST');
  assert.match(j.body.error.message, /not valid JSON/);
  const g = await call(t.url, 'PUT', '/v1/catalog/register', '\x00\x01garbage', {
    'content-type': 'application/json',
  });
  assert.equal(g.status, 400);
  assert.match(g.body.error.message, /not valid JSON/);
  const e = await call(t.url, 'POST', '/v1/apply', '', { 'content-type': 'application/json' });
  assert.equal(e.status, 400);
  const big = 'x'.repeat(2 * 1024 * 1024);
  const o = await call(t.url, 'PUT', '/v1/kv/big', big);
  assert.equal(o.status, 413);
  assert.equal(o.body.error.code, 'HEXMESH_ERR_BODY_TOO_LARGE');
  assert.equal((await call(t.url, 'GET', '/v1/kv/big')).status, 404, 'nothing written');
  // The server still answers after refusing.
  assert.equal((await call(t.url, 'GET', '/v1/health')).status, 200);
});
