/** `hexmesh apply | get | describe | delete` against a real control plane, through the real CLI. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { call, startCp, type TestCp } from '../control/helpers.ts';
import { hexmesh } from './control-support.ts';

let cp: TestCp;
let dir: string;
const ctl = () => ['--control', cp.url];

before(async () => {
  cp = await startCp();
  dir = await mkdtemp(join(tmpdir(), 'hexmesh-cli-'));
});
after(async () => {
  await cp.close();
  await rm(dir, { recursive: true, force: true });
});

const SERVICE = `apiVersion: hexmesh.io/v1alpha1
kind: Service
metadata: { name: reviews }
spec:
  ports: [{ port: 80, protocol: http }]
`;
const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews-split }
spec:
  parentRefs: [{ kind: Service, name: reviews }]
  rules:
    - backendRefs: [{ name: reviews, port: 80 }]
---
apiVersion: hexmesh.io/v1alpha1
kind: TrafficPolicy
metadata: { name: reviews-lb }
spec:
  targetRef: { kind: Service, name: reviews }
`;

test('apply a directory, get (table, json, yaml), describe, re-apply unchanged, delete', async () => {
  const d = join(dir, 'deploy');
  await rm(d, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(d));
  await writeFile(join(d, '10-service.yaml'), SERVICE);
  await writeFile(join(d, '20-routes.yml'), ROUTE);
  await writeFile(join(d, 'README.txt'), 'not a resource');

  const applied = await hexmesh(['apply', '-f', d, ...ctl()]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.equal(
    applied.stdout,
    'Service/reviews created\nHTTPRoute/reviews-split created\nTrafficPolicy/reviews-lb created\n',
  );

  const table = await hexmesh(['get', 'httproutes', ...ctl()]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^NAME\s+NAMESPACE\s+PARENTS\s+AGE$/);
  assert.match(lines[1], /^reviews-split\s+default\s+Service\/reviews\s+\d+s$/);

  const json = await hexmesh(['get', 'svc', 'reviews', '-o', 'json', ...ctl()]);
  assert.equal(json.code, 0, json.stderr);
  const svc = JSON.parse(json.stdout);
  assert.equal(svc.kind, 'Service');
  assert.ok(Number(svc.metadata.resourceVersion) > 0);

  const yaml = await hexmesh(['get', 'trafficpolicies', '-o', 'yaml', ...ctl()]);
  assert.match(yaml.stdout, /kind: TrafficPolicy/);

  // An instance so describe has something to show.
  const reg = await call(cp.url, 'PUT', '/v1/catalog/register', {
    id: 'r1',
    service: 'reviews',
    address: '127.0.0.1',
    port: 9080,
    labels: { version: 'v2' },
    ttl: '1m',
  });
  assert.equal(reg.status, 200);
  const desc = await hexmesh(['describe', 'service', 'reviews', ...ctl()]);
  assert.equal(desc.code, 0, desc.stderr);
  assert.match(desc.stdout, /Name:\s+reviews/);
  assert.match(desc.stdout, /r1\s+127\.0\.0\.1:9080\s+-\s+v2\s+passing/);
  assert.match(desc.stdout, /Routes:\s+HTTPRoute\/reviews-split/);
  assert.match(desc.stdout, /Policies:\s+TrafficPolicy\/reviews-lb/);
  const descRoute = await hexmesh(['describe', 'httproute', 'reviews-split', '-o', 'json', ...ctl()]);
  assert.deepEqual(JSON.parse(descRoute.stdout).attachedTo, [{ service: 'default/reviews', exists: true }]);

  const again = await hexmesh(['apply', '-f', d, '-o', 'json', ...ctl()]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    JSON.parse(again.stdout).results.map((r: { action: string }) => r.action),
    ['unchanged', 'unchanged', 'unchanged'],
  );

  const del = await hexmesh(['delete', 'httproute', 'reviews-split', ...ctl()]);
  assert.equal(del.code, 0, del.stderr);
  assert.equal(del.stdout, 'HTTPRoute/reviews-split deleted\n');
  const gone = await hexmesh(['get', 'httproute', 'reviews-split', ...ctl()]);
  assert.equal(gone.code, 4);
  assert.equal(gone.stderr, 'hexmesh get: HTTPRoute "reviews-split" not found\n');

  const delFile = await hexmesh(['delete', '-f', join(d, '20-routes.yml'), ...ctl()]);
  assert.equal(delFile.code, 4, 'the route was already gone');
  assert.match(delFile.stdout, /TrafficPolicy\/reviews-lb deleted/);
  assert.match(delFile.stderr, /HTTPRoute "reviews-split" not found/);
});

test('invalid files: every problem with file and path, exit 3, nothing written', async () => {
  const good = join(dir, 'good.yaml');
  const bad = join(dir, 'bad.yaml');
  await writeFile(good, SERVICE.replace('reviews', 'ratings'));
  await writeFile(
    bad,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r1 }
spec:
  parentRefs: [{ kind: Service, name: ratings }]
  rules:
    - timeouts: { request: "2 seconds" }
---
apiVersion: hexmesh.io/v1alpha1
kind: Gizmo
metadata: { name: g }
spec: {}
`,
  );
  const d = join(dir, 'mixed');
  await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
  await writeFile(
    join(d, 'a.yaml'),
    await import('node:fs/promises').then((fs) => fs.readFile(good, 'utf8')),
  );
  await writeFile(join(d, 'b.yaml'), await import('node:fs/promises').then((fs) => fs.readFile(bad, 'utf8')));
  const r = await hexmesh(['apply', '-f', d, ...ctl()]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /invalid resources, nothing applied/);
  assert.match(r.stderr, /b\.yaml \(document 1\): spec\.rules\[0\]\.timeouts\.request: .*"2 seconds"/);
  assert.match(r.stderr, /b\.yaml \(document 2\): kind: unknown kind "Gizmo"/);
  assert.doesNotMatch(r.stderr, /a\.yaml/);
  const ratings = await call(cp.url, 'GET', '/v1/resources/Service/default/ratings');
  assert.equal(ratings.status, 404, 'a refused apply wrote nothing');

  await writeFile(join(dir, 'syntax.yaml'), 'kind: Service\nmetadata: {name: x\n');
  const syn = await hexmesh(['apply', '-f', join(dir, 'syntax.yaml'), ...ctl()]);
  assert.equal(syn.code, 3);
  assert.match(syn.stderr, /syntax\.yaml: invalid configuration .*\n\s+- line \d+, column \d+/);
});

test('a stale resourceVersion is a conflict: exit 5, nothing written', async () => {
  const f = join(dir, 'svc.yaml');
  await writeFile(f, SERVICE.replace('reviews', 'details'));
  assert.equal((await hexmesh(['apply', '-f', f, ...ctl()])).code, 0);
  const stale = SERVICE.replace('reviews', 'details')
    .replace('metadata: { name: details }', 'metadata: { name: details, resourceVersion: "1" }')
    .replace('port: 80', 'port: 81');
  await writeFile(f, stale);
  const r = await hexmesh(['apply', '-f', f, ...ctl()]);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /^hexmesh apply: conflict: /);
  const now = await call(cp.url, 'GET', '/v1/resources/Service/default/details');
  assert.equal(now.body.spec.ports[0].port, 80);
});

test('usage errors exit 2: unknown kind, delete without target', async () => {
  const k = await hexmesh(['get', 'gizmos', ...ctl()]);
  assert.equal(k.code, 2);
  assert.match(k.stderr, /unknown kind "gizmos" \(known kinds: Service, HTTPRoute/);
  const d = await hexmesh(['delete', 'service', ...ctl()]);
  assert.equal(d.code, 2);
});

test('an unreachable control plane: one clear line, exit 1; HEXMESH_CONTROL is honoured', async () => {
  const r = await hexmesh(['get', 'services'], { env: { HEXMESH_CONTROL: 'http://127.0.0.1:9' } });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    'hexmesh get: cannot reach control plane at http://127.0.0.1:9: connect ECONNREFUSED 127.0.0.1:9\n',
  );
  const ok = await hexmesh(['get', 'services', '-o', 'json'], { env: { HEXMESH_CONTROL: cp.url } });
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(Array.isArray(JSON.parse(ok.stdout)));
});
