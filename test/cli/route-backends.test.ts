/**
 * Issue 10: a route to an unknown backend is accepted, but never silently — the apply answer
 * (API and CLI) warns, and `hexmesh check` warns until the backend exists (as `istioctl analyze`).
 * A real control plane, the real CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { call, startCp, type TestCp } from '../control/helpers.ts';
import { hexmesh } from './control-support.ts';

let cp: TestCp;
let dir: string;

before(async () => {
  cp = await startCp();
  dir = await mkdtemp(join(tmpdir(), 'hexmesh-backends-'));
});
after(async () => {
  await cp.close();
  await rm(dir, { recursive: true, force: true });
});

const DOCS = `apiVersion: hexmesh.io/v1alpha1
kind: Service
metadata: { name: reviews }
spec:
  ports: [{ port: 80, protocol: http }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews-split }
spec:
  parentRefs: [{ kind: Service, name: reviews }]
  rules:
    - backendRefs: [{ name: reviews, port: 80, weight: 90 }, { name: ghost, port: 80, weight: 10 }]
`;

const GHOST = /HTTPRoute default\/reviews-split: rules\[0\] backendRef names unknown service default\/ghost/;

interface Finding {
  name: string;
  status: string;
  message: string;
}

test('issue 10: a route to an unknown backend warns on apply (CLI and API) and in hexmesh check', async () => {
  const file = join(dir, 'split.yaml');
  await writeFile(file, DOCS);
  const applied = await hexmesh(['apply', '-f', file, '--control', cp.url]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /HTTPRoute\/reviews-split created/);
  assert.match(applied.stderr, /^warning: .*/m);
  assert.match(applied.stderr, GHOST);
  assert.doesNotMatch(applied.stderr, /default\/reviews \(/, 'the known backend is not named');

  // The API answer carries it too: in the body of /v1/apply, as a Warning header on PUT.
  const route = (await call(cp.url, 'GET', '/v1/resources/HTTPRoute/default/reviews-split')).body;
  const again = await call(cp.url, 'POST', '/v1/apply', [route]);
  assert.equal(again.status, 200);
  assert.ok(
    again.body.warnings.some((w: string) => GHOST.test(w)),
    JSON.stringify(again.body),
  );
  const put = await call(cp.url, 'PUT', '/v1/resources/HTTPRoute/default/reviews-split', route);
  assert.match(put.headers.get('warning') ?? '', /299 - .*unknown service default\/ghost/);

  // hexmesh check: a warning (exit 0), a failure with --strict.
  const check = await hexmesh(['check', '-o', 'json', '--control', cp.url]);
  const findings = JSON.parse(check.stdout) as Finding[];
  const refs = findings.filter((f) => f.name === 'config-references');
  assert.equal(refs.length, 1, JSON.stringify(refs));
  assert.equal(refs[0].status, 'warn');
  assert.match(refs[0].message, GHOST);
  const strict = await hexmesh(['check', '--strict', '--control', cp.url]);
  assert.notEqual(strict.code, 0, strict.stdout);
  assert.match(strict.stdout, /\[warn\].*config-references/);

  // Once ghost has an instance in the catalog, the warning is gone everywhere.
  const reg = await call(cp.url, 'PUT', '/v1/catalog/register', {
    id: 'ghost-1',
    service: 'ghost',
    address: '127.0.0.1',
    port: 9,
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const clean = await call(cp.url, 'POST', '/v1/apply', [route]);
  assert.deepEqual(clean.body.warnings, []);
  const ok = JSON.parse((await hexmesh(['check', '-o', 'json', '--control', cp.url])).stdout) as Finding[];
  assert.equal(ok.find((f) => f.name === 'config-references')?.status, 'ok');
});
