/**
 * Validation before apply (issue 15): `hexmesh validate` checks every resource kind and mesh
 * files offline and analyses them as `istioctl analyze` (duplicate matches, weights summing
 * to 0, policies selecting nothing, unknown backends); `GET /v1/analyze` (hexmesh check) says
 * the same of the stored config; `apply --dry-run=server|client` writes nothing; `hexmesh diff
 * -f` shows what apply would change, exit 1 when it would.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
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
  dir = await mkdtemp(join(tmpdir(), 'hexmesh-validate-'));
});
after(async () => {
  await cp.close();
  await rm(dir, { recursive: true, force: true });
});

const SERVICES = `apiVersion: hexmesh.io/v1alpha1
kind: Service
metadata: { name: shop }
spec: { ports: [{ port: 80, protocol: http }] }
---
apiVersion: hexmesh.io/v1alpha1
kind: Service
metadata: { name: cart }
spec: { ports: [{ port: 80, protocol: http }] }
`;
// Two routes on shop with the same /api match; a rule whose weights sum to 0; a backend named
// nowhere; a TrafficPolicy on a route that does not exist; an AuthorizationPolicy on no service.
const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: a-api }
spec:
  parentRefs: [{ name: shop }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /api } }]
      backendRefs: [{ name: cart, port: 80 }]
    - matches: [{ path: { type: Exact, value: /zero } }]
      backendRefs: [{ name: cart, port: 80, weight: 0 }, { name: shop, port: 80, weight: 0 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: b-api }
spec:
  parentRefs: [{ name: shop }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /api } }]
      backendRefs: [{ name: nowhere, port: 80 }]
---
apiVersion: hexmesh.io/v1alpha1
kind: TrafficPolicy
metadata: { name: lost }
spec:
  targetRef: { kind: HTTPRoute, name: missing-route }
---
apiVersion: hexmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: ghost }
spec:
  targetRef: { name: ghost }
  action: DENY
  rules: [{}]
`;

test('validate: every kind offline, with the cross-resource analysis; --strict fails on warnings; invalid files exit 3', async () => {
  const d = join(dir, 'deploy');
  await mkdir(d);
  await writeFile(join(d, '10-services.yaml'), SERVICES);
  await writeFile(join(d, '20-routes.yaml'), ROUTES);
  const r = await hexmesh(['validate', d]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /10-services\.yaml: valid \(2 resources\)/);
  assert.match(r.stdout, /20-routes\.yaml: valid \(4 resources\)/);
  const w = r.stderr;
  assert.match(
    w,
    /warning: HTTPRoute default\/b-api rules\[0\]: a match is the same as HTTPRoute default\/a-api rules\[0\]'s on Service default\/shop/,
  );
  assert.match(w, /warning: HTTPRoute default\/a-api rules\[1\]: the backendRefs' weights sum to 0/);
  assert.match(
    w,
    /warning: HTTPRoute default\/b-api: rules\[0\] backendRef names unknown service default\/nowhere/,
  );
  assert.match(
    w,
    /warning: TrafficPolicy default\/lost: targetRef HTTPRoute default\/missing-route does not exist/,
  );
  assert.match(
    w,
    /warning: AuthorizationPolicy default\/ghost: selects Service default\/ghost, which does not exist/,
  );
  assert.equal((await hexmesh(['validate', '--strict', d])).code, 1);
  // Only the Services: nothing to say.
  const clean = await hexmesh(['validate', '--strict', join(d, '10-services.yaml')]);
  assert.equal(clean.code, 0, clean.stderr);
  assert.equal(clean.stderr, '');

  // Any kind is checked by its schema: every problem by path, exit 3.
  await writeFile(
    join(dir, 'bad.yaml'),
    `apiVersion: hexmesh.io/v1alpha1
kind: TrafficPolicy
metadata: { name: bad }
spec:
  targetRef: { name: shop }
  loadBalancer: { type: fastest }
`,
  );
  const bad = await hexmesh(['validate', join(dir, 'bad.yaml')]);
  assert.equal(bad.code, 3);
  assert.match(bad.stderr, /spec\.loadBalancer\.type/);

  // Mesh files and proxy configs still validate, the shop's with its included resources.
  const mesh = await hexmesh([
    'validate',
    'examples/shop/mesh.yaml',
    'examples/quickstart/frontend-proxy.yaml',
  ]);
  assert.equal(mesh.code, 0, mesh.stderr);
  assert.match(mesh.stdout, /examples\/shop\/mesh\.yaml: valid \(mesh file: 6 services, \d+ resources\)/);
  assert.match(mesh.stdout, /frontend-proxy\.yaml: valid \(1 services, 1 resources\)/);
});

test('the stored config analysed (GET /v1/analyze, hexmesh check); apply --dry-run writes nothing; diff -f', async () => {
  const d = join(dir, 'deploy');
  // Server dry run: validated and compared by the control plane, nothing written.
  const dry = await hexmesh(['apply', '-f', d, '--dry-run=server', ...ctl()]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^Service\/shop created \(server dry run\)$/m);
  assert.equal((await hexmesh(['get', 'service', 'shop', ...ctl()])).code, 4, 'nothing was written');
  const client = await hexmesh(['apply', '-f', d, '--dry-run=client', ...ctl()]);
  assert.match(client.stdout, /^HTTPRoute\/a-api valid \(client dry run\)$/m);

  // diff before anything exists: everything is new, exit 1.
  const diff0 = await hexmesh(['diff', '-f', join(d, '10-services.yaml'), ...ctl()]);
  assert.equal(diff0.code, 1, diff0.stderr);
  assert.match(diff0.stdout, /^\+\+\+ merged\/Service\.default\.shop$/m);

  const applied = await hexmesh(['apply', '-f', d, ...ctl()]);
  assert.equal(applied.code, 0, applied.stderr);
  const analysis = await call(cp.url, 'GET', '/v1/analyze');
  const warnings = (analysis.body as { warnings: string[] }).warnings.join('\n');
  assert.match(warnings, /b-api rules\[0\]: a match is the same as HTTPRoute default\/a-api rules\[0\]'s/);
  assert.match(warnings, /weights sum to 0/);
  assert.match(
    warnings,
    /TrafficPolicy default\/lost: targetRef HTTPRoute default\/missing-route does not exist/,
  );
  assert.match(warnings, /AuthorizationPolicy default\/ghost/);

  const same = await hexmesh(['diff', '-f', d, ...ctl()]);
  assert.equal(same.code, 0, `${same.stdout}${same.stderr}`);
  assert.equal(same.stdout, '');
  await writeFile(
    join(dir, 'changed.yaml'),
    SERVICES.replace('port: 80, protocol: http }] }\n---', 'port: 8080, protocol: http }] }\n---'),
  );
  const changed = await hexmesh(['diff', '-f', join(dir, 'changed.yaml'), ...ctl()]);
  assert.equal(changed.code, 1, changed.stderr);
  assert.match(changed.stdout, /^--- live\/Service\.default\.shop$/m);
  assert.match(changed.stdout, /^-\s+- port: 80$/m);
  assert.match(changed.stdout, /^\+\s+- port: 8080$/m);
  assert.doesNotMatch(changed.stdout, /Service\.default\.cart/, 'unchanged resources are not shown');
});
