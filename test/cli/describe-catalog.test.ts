/**
 * One meaning of "service": `hexmesh services` lists every service of the catalog, and
 * `describe service NAME` shows any of them, with or without a Service resource (issue 15:
 * `services` listed `cart`, `describe service cart` said not found).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startCp, type TestCp } from '../control/helpers.ts';
import { hexmesh } from './control-support.ts';

let cp: TestCp;
const ctl = () => ['--control', cp.url];

before(async () => {
  cp = await startCp();
});
after(() => cp.close());

test('describe service shows a catalog service that has no Service resource; a name in neither is not found (exit 4)', async () => {
  const reg = await call(cp.url, 'PUT', '/v1/catalog/register', {
    id: 'cart-1',
    service: 'cart',
    address: '127.0.0.1',
    port: 9090,
    labels: { version: 'v1' },
    ttl: '1m',
  });
  assert.equal(reg.status, 200);
  const route = await hexmesh(['apply', '-f', '-', ...ctl()], {
    input: `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: cart }
spec:
  parentRefs: [{ kind: Service, name: cart }]
  rules: [{ backendRefs: [{ name: cart, port: 80 }] }]
`,
  });
  assert.equal(route.code, 0, route.stderr);

  const wide = await hexmesh(['get', 'httproute', '-o', 'wide', ...ctl()]);
  assert.match(wide.stdout, /^NAME\s+NAMESPACE\s+.*AGE\s+RESOURCE VERSION\s+API VERSION\n/);
  assert.match(wide.stdout, /^cart\s+default\s+.*\s+\d+\s+gateway\.networking\.k8s\.io\/v1$/m);
  const services = await hexmesh(['services', ...ctl()]);
  assert.match(services.stdout, /\bcart\b/);
  const desc = await hexmesh(['describe', 'service', 'cart', ...ctl()]);
  assert.equal(desc.code, 0, desc.stderr);
  assert.match(desc.stdout, /Name:\s+cart/);
  assert.match(desc.stdout, /Resource:\s+<none> \(a catalog service/);
  assert.match(desc.stdout, /cart-1\s+127\.0\.0\.1:9090\s+-\s+v1\s+passing/);
  assert.match(desc.stdout, /Routes:\s+HTTPRoute\/cart/);
  const json = JSON.parse((await hexmesh(['describe', 'service', 'cart', '-o', 'json', ...ctl()])).stdout);
  assert.equal(json.source, 'catalog');
  assert.equal(json.resource, undefined);

  const none = await hexmesh(['describe', 'service', 'nowhere', ...ctl()]);
  assert.equal(none.code, 4);
  assert.match(
    none.stderr,
    /service "nowhere" not found .*no Service resource and no instance in the catalog/,
  );
  // Other kinds keep their plain not-found.
  const noRoute = await hexmesh(['describe', 'httproute', 'nowhere', ...ctl()]);
  assert.equal(noRoute.code, 4);
});
