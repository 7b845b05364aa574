import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { grpcRouteSchema, httpRouteSchema, type GRPCRoute, type HTTPRoute } from '../../config/resources.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { compileRoutes, noBackendError, noRouteError, type Route, type RouteRequest } from './route-table.ts';

const SVC = { name: 'reviews', namespace: 'prod' };

type Match = Record<string, unknown>;
interface RouteSpec {
  name: string;
  namespace?: string;
  created?: string;
  parent?: Record<string, unknown>;
  /** One entry per rule: the rule's matches (undefined = no matches). */
  rules: (Match[] | undefined)[];
}

/** An HTTPRoute validated by the real schema; rule i is named `r<i>`, backend `<route>-<i>`. */
function http(spec: RouteSpec): HTTPRoute {
  return httpRouteSchema.parse({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: {
      name: spec.name,
      namespace: spec.namespace ?? 'prod',
      ...(spec.created ? { creationTimestamp: spec.created } : {}),
    },
    spec: {
      parentRefs: [spec.parent ?? { kind: 'Service', name: 'reviews' }],
      rules: spec.rules.map((matches, i) => ({
        name: `r${i}`,
        ...(matches ? { matches } : {}),
        backendRefs: [{ name: `${spec.name}-${i}`, port: 9080 }],
      })),
    },
  });
}

function grpc(spec: RouteSpec): GRPCRoute {
  return grpcRouteSchema.parse({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GRPCRoute',
    metadata: {
      name: spec.name,
      namespace: spec.namespace ?? 'prod',
      ...(spec.created ? { creationTimestamp: spec.created } : {}),
    },
    spec: {
      parentRefs: [spec.parent ?? { kind: 'Service', name: 'reviews' }],
      rules: spec.rules.map((matches, i) => ({
        name: `r${i}`,
        ...(matches ? { matches } : {}),
        backendRefs: [{ name: `${spec.name}-${i}` }],
      })),
    },
  });
}

function req(path: string, method = 'GET', headers: Record<string, string> = {}): RouteRequest {
  return { method, path, headers };
}

const exact = (value: string): Match => ({ path: { type: 'Exact', value } });
const prefix = (value: string): Match => ({ path: { type: 'PathPrefix', value } });
const regex = (value: string): Match => ({ path: { type: 'RegularExpression', value } });

interface Row {
  name: string;
  routes: Route[];
  request: RouteRequest;
  client?: string;
  /** `<namespace>/<route> <rule>`; null = routes attached but no match; 'no-table' = nothing attached. */
  want: string | null;
}

const rows: Row[] = [
  {
    name: 'exact beats prefix',
    routes: [http({ name: 'a', rules: [[prefix('/foo')], [exact('/foo')]] })],
    request: req('/foo'),
    want: 'prod/a r1',
  },
  {
    name: 'exact is case-sensitive',
    routes: [http({ name: 'a', rules: [[prefix('/')], [exact('/Foo')]] })],
    request: req('/foo'),
    want: 'prod/a r0',
  },
  {
    name: 'exact ignores the query string',
    routes: [http({ name: 'a', rules: [[prefix('/')], [exact('/foo')]] })],
    request: req('/foo?x=1'),
    want: 'prod/a r1',
  },
  {
    name: 'longer prefix beats shorter',
    routes: [http({ name: 'a', rules: [[prefix('/api')], [prefix('/api/v2')]] })],
    request: req('/api/v2/users'),
    want: 'prod/a r1',
  },
  {
    name: 'longer prefix beats shorter across routes regardless of age',
    routes: [
      http({ name: 'old', created: '2020-01-01T00:00:00Z', rules: [[prefix('/api')]] }),
      http({ name: 'new', created: '2024-01-01T00:00:00Z', rules: [[prefix('/api/v2')]] }),
    ],
    request: req('/api/v2'),
    want: 'prod/new r0',
  },
  {
    name: 'element-wise prefix: /abc does not match /abcd',
    routes: [http({ name: 'a', rules: [[prefix('/')], [prefix('/abc')]] })],
    request: req('/abcd'),
    want: 'prod/a r0',
  },
  {
    name: 'element-wise prefix: /abc matches /abc/',
    routes: [http({ name: 'a', rules: [[prefix('/')], [prefix('/abc')]] })],
    request: req('/abc/'),
    want: 'prod/a r1',
  },
  {
    name: 'element-wise prefix: trailing slash in value ignored, /abc/ matches /abc',
    routes: [http({ name: 'a', rules: [[prefix('/')], [prefix('/abc/')]] })],
    request: req('/abc?q=1'),
    want: 'prod/a r1',
  },
  {
    name: 'only prefix routes, none matches → 404',
    routes: [http({ name: 'a', rules: [[prefix('/abc')]] })],
    request: req('/abcd'),
    want: null,
  },
  {
    name: 'prefix beats regex (regex ranks below every prefix)',
    routes: [http({ name: 'a', rules: [[regex('/api/v[0-9]+')], [prefix('/api')]] })],
    request: req('/api/v1'),
    want: 'prod/a r1',
  },
  {
    name: 'regex path matches when no prefix does',
    routes: [http({ name: 'a', rules: [[prefix('/other')], [regex('/api/v[0-9]+')]] })],
    request: req('/api/v12?x=y'),
    want: 'prod/a r1',
  },
  {
    name: 'regex path is a full match',
    routes: [http({ name: 'a', rules: [[regex('/api/v[0-9]+')]] })],
    request: req('/x/api/v1/y'),
    want: null,
  },
  {
    name: 'method beats no method',
    routes: [http({ name: 'a', rules: [[prefix('/foo')], [{ ...prefix('/foo'), method: 'POST' }]] })],
    request: req('/foo', 'POST'),
    want: 'prod/a r1',
  },
  {
    name: 'method mismatch falls through',
    routes: [http({ name: 'a', rules: [[prefix('/foo')], [{ ...prefix('/foo'), method: 'POST' }]] })],
    request: req('/foo', 'GET'),
    want: 'prod/a r0',
  },
  {
    name: 'longer prefix beats method',
    routes: [http({ name: 'a', rules: [[{ ...prefix('/foo'), method: 'GET' }], [prefix('/foo/bar')]] })],
    request: req('/foo/bar', 'GET'),
    want: 'prod/a r1',
  },
  {
    name: 'more header matches win',
    routes: [
      http({
        name: 'a',
        rules: [
          [{ headers: [{ name: 'x-a', value: '1' }] }],
          [
            {
              headers: [
                { name: 'x-a', value: '1' },
                { name: 'x-b', value: '2' },
              ],
            },
          ],
        ],
      }),
    ],
    request: req('/', 'GET', { 'x-a': '1', 'x-b': '2' }),
    want: 'prod/a r1',
  },
  {
    name: 'header value mismatch falls to fewer headers',
    routes: [
      http({
        name: 'a',
        rules: [
          [{ headers: [{ name: 'x-a', value: '1' }] }],
          [
            {
              headers: [
                { name: 'x-a', value: '1' },
                { name: 'x-b', value: '2' },
              ],
            },
          ],
        ],
      }),
    ],
    request: req('/', 'GET', { 'x-a': '1', 'x-b': '3' }),
    want: 'prod/a r0',
  },
  {
    name: 'method beats more headers',
    routes: [
      http({
        name: 'a',
        rules: [[{ headers: [{ name: 'x-a', value: '1' }] }], [{ method: 'GET' }]],
      }),
    ],
    request: req('/', 'GET', { 'x-a': '1' }),
    want: 'prod/a r1',
  },
  {
    name: 'header regex (full match)',
    routes: [
      http({
        name: 'a',
        rules: [
          [prefix('/')],
          [{ headers: [{ type: 'RegularExpression', name: 'x-user', value: 'test-.*' }] }],
        ],
      }),
    ],
    request: req('/', 'GET', { 'x-user': 'test-42' }),
    want: 'prod/a r1',
  },
  {
    name: 'header regex does not match a substring',
    routes: [
      http({
        name: 'a',
        rules: [
          [prefix('/')],
          [{ headers: [{ type: 'RegularExpression', name: 'x-user', value: 'test-.*' }] }],
        ],
      }),
    ],
    request: req('/', 'GET', { 'x-user': 'a-test-42' }),
    want: 'prod/a r0',
  },
  {
    name: 'header names are case-insensitive',
    routes: [
      http({ name: 'a', rules: [[prefix('/')], [{ headers: [{ name: 'X-Canary', value: 'yes' }] }]] }),
    ],
    request: req('/', 'GET', { 'x-canary': 'yes' }),
    want: 'prod/a r1',
  },
  {
    name: 'header values are case-sensitive',
    routes: [
      http({ name: 'a', rules: [[prefix('/')], [{ headers: [{ name: 'X-Canary', value: 'yes' }] }]] }),
    ],
    request: req('/', 'GET', { 'x-canary': 'YES' }),
    want: 'prod/a r0',
  },
  {
    name: 'more query params win',
    routes: [
      http({
        name: 'a',
        rules: [
          [{ queryParams: [{ name: 'a', value: '1' }] }],
          [
            {
              queryParams: [
                { name: 'a', value: '1' },
                { name: 'b', value: 'x y' },
              ],
            },
          ],
        ],
      }),
    ],
    request: req('/p?b=x%20y&a=1'),
    want: 'prod/a r1',
  },
  {
    name: 'query param: first value counts',
    routes: [http({ name: 'a', rules: [[prefix('/')], [{ queryParams: [{ name: 'v', value: '2' }] }]] })],
    request: req('/?v=1&v=2'),
    want: 'prod/a r0',
  },
  {
    name: 'query param regex',
    routes: [
      http({
        name: 'a',
        rules: [
          [prefix('/')],
          [{ queryParams: [{ type: 'RegularExpression', name: 'id', value: '[0-9]+' }] }],
        ],
      }),
    ],
    request: req('/?id=123'),
    want: 'prod/a r1',
  },
  {
    name: 'more headers beat more query params',
    routes: [
      http({
        name: 'a',
        rules: [
          [
            {
              queryParams: [
                { name: 'a', value: '1' },
                { name: 'b', value: '2' },
              ],
            },
          ],
          [{ headers: [{ name: 'x', value: '1' }] }],
        ],
      }),
    ],
    request: req('/?a=1&b=2', 'GET', { x: '1' }),
    want: 'prod/a r1',
  },
  {
    name: 'older route wins',
    routes: [
      http({ name: 'a', created: '2024-05-01T00:00:00Z', rules: [[prefix('/')]] }),
      http({ name: 'b', created: '2023-05-01T00:00:00Z', rules: [[prefix('/')]] }),
    ],
    request: req('/x'),
    want: 'prod/b r0',
  },
  {
    name: 'dated route beats undated one',
    routes: [
      http({ name: 'a', rules: [[prefix('/')]] }),
      http({ name: 'b', created: '2023-05-01T00:00:00Z', rules: [[prefix('/')]] }),
    ],
    request: req('/x'),
    want: 'prod/b r0',
  },
  {
    name: 'name order when ages tie',
    routes: [http({ name: 'zeta', rules: [[prefix('/')]] }), http({ name: 'alpha', rules: [[prefix('/')]] })],
    request: req('/x'),
    want: 'prod/alpha r0',
  },
  {
    name: 'name order with equal timestamps',
    routes: [
      http({ name: 'b', created: '2023-05-01T00:00:00Z', rules: [[prefix('/')]] }),
      http({ name: 'a', created: '2023-05-01T00:00:00Z', rules: [[prefix('/')]] }),
    ],
    request: req('/x'),
    want: 'prod/a r0',
  },
  {
    name: 'rule order',
    routes: [http({ name: 'a', rules: [[prefix('/x')], [prefix('/x')]] })],
    request: req('/x'),
    want: 'prod/a r0',
  },
  {
    name: 'rule without matches matches everything',
    routes: [http({ name: 'a', rules: [[prefix('/x')], undefined] })],
    request: req('/anything/else', 'DELETE'),
    want: 'prod/a r1',
  },
  {
    name: 'multiple matches in a rule are ORed',
    routes: [http({ name: 'a', rules: [[prefix('/')], [exact('/one'), exact('/two')]] })],
    request: req('/two'),
    want: 'prod/a r1',
  },
  {
    name: 'entries of one match are ANDed',
    routes: [
      http({
        name: 'a',
        rules: [[prefix('/')], [{ ...exact('/one'), method: 'PUT', headers: [{ name: 'x', value: '1' }] }]],
      }),
    ],
    request: req('/one', 'PUT', {}),
    want: 'prod/a r0',
  },
  {
    name: 'no match → undefined (404)',
    routes: [http({ name: 'a', rules: [[exact('/only')]] })],
    request: req('/other'),
    want: null,
  },
  {
    name: 'no route attached → undefined table',
    routes: [http({ name: 'a', parent: { kind: 'Service', name: 'ratings' }, rules: [[prefix('/')]] })],
    request: req('/'),
    want: 'no-table',
  },
  {
    name: 'parentRef in another namespace does not attach',
    routes: [
      http({ name: 'a', parent: { kind: 'Service', name: 'reviews', namespace: 'dev' }, rules: [undefined] }),
    ],
    request: req('/'),
    want: 'no-table',
  },
  {
    name: 'producer route applies to clients of any namespace',
    routes: [http({ name: 'prod-route', rules: [undefined] })],
    client: 'shop',
    request: req('/'),
    want: 'prod/prod-route r0',
  },
  {
    name: 'consumer route beats a more specific producer route for its clients',
    routes: [
      http({ name: 'p', created: '2020-01-01T00:00:00Z', rules: [[exact('/x')]] }),
      http({
        name: 'c',
        namespace: 'shop',
        created: '2024-01-01T00:00:00Z',
        parent: { kind: 'Service', name: 'reviews', namespace: 'prod' },
        rules: [[prefix('/')]],
      }),
    ],
    client: 'shop',
    request: req('/x'),
    want: 'shop/c r0',
  },
  {
    name: 'consumer route not applied to clients of other namespaces',
    routes: [
      http({ name: 'p', rules: [[exact('/x')]] }),
      http({
        name: 'c',
        namespace: 'shop',
        parent: { kind: 'Service', name: 'reviews', namespace: 'prod' },
        rules: [undefined],
      }),
    ],
    client: 'billing',
    request: req('/y'),
    want: null,
  },
  {
    name: 'consumer route alone: other namespaces get no table',
    routes: [
      http({
        name: 'c',
        namespace: 'shop',
        parent: { kind: 'Service', name: 'reviews', namespace: 'prod' },
        rules: [undefined],
      }),
    ],
    client: 'billing',
    request: req('/'),
    want: 'no-table',
  },
  {
    name: 'request unmatched by consumer routes falls through to producer routes',
    routes: [
      http({ name: 'p', rules: [[prefix('/api')]] }),
      http({
        name: 'c',
        namespace: 'shop',
        parent: { kind: 'Service', name: 'reviews', namespace: 'prod' },
        rules: [[prefix('/admin')]],
      }),
    ],
    client: 'shop',
    request: req('/api/v1'),
    want: 'prod/p r0',
  },
  {
    name: 'parentRef port must agree when both given',
    routes: [
      http({ name: 'a', parent: { kind: 'Service', name: 'reviews', port: 9090 }, rules: [undefined] }),
      http({ name: 'b', parent: { kind: 'Service', name: 'reviews', port: 9080 }, rules: [undefined] }),
    ],
    request: req('/'),
    want: 'prod/b r0',
  },
];

describe('compileRoutes precedence table', () => {
  for (const row of rows) {
    it(row.name, () => {
      const svc = row.name.startsWith('parentRef port') ? { ...SVC, port: 9080 } : SVC;
      // Shuffle-independence: the answer must not depend on the order routes are listed in.
      for (const routes of [row.routes, [...row.routes].reverse()]) {
        const table = compileRoutes(svc, routes, row.client ?? 'prod');
        if (row.want === 'no-table') {
          assert.equal(table, undefined);
          continue;
        }
        assert.ok(table, 'a route attaches');
        const m = table.match(row.request);
        assert.equal(m ? `${m.routeLabel} ${m.ruleName}` : null, row.want);
      }
    });
  }
});

describe('MatchedRule', () => {
  it('carries backends, timeouts, retry, matchedPrefix and mirrors', () => {
    const route = httpRouteSchema.parse({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'r', namespace: 'prod' },
      spec: {
        parentRefs: [{ name: 'reviews' }],
        rules: [
          {
            matches: [
              { path: { type: 'PathPrefix', value: '/api/' } },
              { path: { type: 'RegularExpression', value: '/r.*' } },
            ],
            filters: [
              {
                type: 'RequestMirror',
                requestMirror: { backendRef: { name: 'shadow', port: 80 }, percent: 10 },
              },
            ],
            backendRefs: [
              { name: 'v1', port: 9080, weight: 90 },
              { name: 'v2', namespace: 'canary', weight: 10 },
            ],
            timeouts: { request: '2s', backendRequest: '500ms' },
            retry: { codes: [503], attempts: 2 },
          },
        ],
      },
    });
    const table = compileRoutes(SVC, [route], 'prod')!;
    const m = table.match(req('/api/x'))!;
    assert.equal(m.routeLabel, 'prod/r');
    assert.equal(m.ruleName, '#0');
    assert.equal(m.kind, 'HTTPRoute');
    assert.equal(m.matchedPrefix, '/api/');
    assert.deepEqual(m.timeouts, { request: 2000, backendRequest: 500 });
    assert.deepEqual(m.retry, { codes: [503], attempts: 2 });
    assert.deepEqual(
      m.backends.all.map((b) => [b.name, b.namespace, b.port, b.weight]),
      [
        ['v1', 'prod', 9080, 90],
        ['v2', 'canary', undefined, 10],
      ],
    );
    assert.deepEqual(m.mirrors[0], {
      backend: { name: 'shadow', namespace: 'prod', port: 80, weight: 1 },
      numerator: 10,
      denominator: 100,
    });
    const byRegex = table.match(req('/rx'))!;
    assert.equal(byRegex.matchedPrefix, undefined);
    assert.equal(byRegex.backends, m.backends, 'rule data is shared, not copied per match');
    assert.ok(Object.isFrozen(m));
  });

  it('noRouteError and noBackendError map to 404 and 500 / UNAVAILABLE', () => {
    const route = http({ name: 'a', rules: [undefined] });
    const table = compileRoutes(SVC, [route], 'prod')!;
    const e = noRouteError('reviews.prod', req('/x?y=1'));
    assert.ok(e instanceof HexmeshError);
    assert.equal(e.status, 404);
    assert.match(e.message, /GET \/x$/);
    const b = noBackendError(table.match(req('/'))!);
    assert.equal(b.status, 500);
    assert.equal(b.context.grpcStatus, 14);
  });
});

describe('GRPCRoute matching table', () => {
  const svc = (s: string, m?: string, type = 'Exact'): Match => ({
    method: { type, ...(s ? { service: s } : {}), ...(m ? { method: m } : {}) },
  });
  const grpcReq = (path: string, headers: Record<string, string> = {}): RouteRequest => ({
    method: 'POST',
    path,
    headers: { 'content-type': 'application/grpc', ...headers },
  });
  const grows: Row[] = [
    {
      name: 'exact service+method beats service only',
      routes: [grpc({ name: 'g', rules: [[svc('pkg.Reviews')], [svc('pkg.Reviews', 'Get')]] })],
      request: grpcReq('/pkg.Reviews/Get'),
      want: 'prod/g r1',
    },
    {
      name: 'service only matches any method',
      routes: [grpc({ name: 'g', rules: [[svc('pkg.Reviews')], [svc('pkg.Reviews', 'Get')]] })],
      request: grpcReq('/pkg.Reviews/List'),
      want: 'prod/g r0',
    },
    {
      name: 'service only beats method only',
      routes: [grpc({ name: 'g', rules: [[svc('', 'Get')], [svc('pkg.Reviews')]] })],
      request: grpcReq('/pkg.Reviews/Get'),
      want: 'prod/g r1',
    },
    {
      name: 'exact beats regex',
      routes: [grpc({ name: 'g', rules: [[svc('pkg\\..*', 'Get', 'RegularExpression')], [svc('', 'Get')]] })],
      request: grpcReq('/pkg.Reviews/Get'),
      want: 'prod/g r1',
    },
    {
      name: 'regex on service and method (full match)',
      routes: [grpc({ name: 'g', rules: [undefined, [svc('pkg\\.R.*', 'G.t', 'RegularExpression')]] })],
      request: grpcReq('/pkg.Reviews/Get'),
      want: 'prod/g r1',
    },
    {
      name: 'regex does not match a substring',
      routes: [grpc({ name: 'g', rules: [undefined, [svc('Reviews', undefined, 'RegularExpression')]] })],
      request: grpcReq('/pkg.Reviews/Get'),
      want: 'prod/g r0',
    },
    {
      name: 'regex beats header-only match',
      routes: [
        grpc({
          name: 'g',
          rules: [[{ headers: [{ name: 'x-a', value: '1' }] }], [svc('.*', undefined, 'RegularExpression')]],
        }),
      ],
      request: grpcReq('/pkg.Reviews/Get', { 'x-a': '1' }),
      want: 'prod/g r1',
    },
    {
      name: 'more headers win within a kind',
      routes: [
        grpc({
          name: 'g',
          rules: [
            [svc('pkg.Reviews')],
            [{ ...svc('pkg.Reviews'), headers: [{ name: 'X-Version', value: 'v2' }] }],
          ],
        }),
      ],
      request: grpcReq('/pkg.Reviews/Get', { 'x-version': 'v2' }),
      want: 'prod/g r1',
    },
    {
      name: 'older route wins, then name',
      routes: [
        grpc({ name: 'b', created: '2021-01-01T00:00:00Z', rules: [[svc('pkg.Reviews')]] }),
        grpc({ name: 'a', created: '2022-01-01T00:00:00Z', rules: [[svc('pkg.Reviews')]] }),
        grpc({ name: 'c', created: '2021-01-01T00:00:00Z', rules: [[svc('pkg.Reviews')]] }),
      ],
      request: grpcReq('/pkg.Reviews/Get'),
      want: 'prod/b r0',
    },
    {
      name: 'no method in path only matches method-less rules',
      routes: [grpc({ name: 'g', rules: [[svc('pkg.Reviews')]] })],
      request: grpcReq('/pkg.Reviews'),
      want: null,
    },
    {
      name: 'unmatched gRPC request → undefined',
      routes: [grpc({ name: 'g', rules: [[svc('pkg.Reviews', 'Get')]] })],
      request: grpcReq('/pkg.Ratings/Get'),
      want: null,
    },
    {
      name: 'gRPC request falls back to HTTPRoute matches',
      routes: [
        grpc({ name: 'g', rules: [[svc('pkg.Reviews')]] }),
        http({ name: 'h', rules: [[prefix('/pkg.Ratings')]] }),
      ],
      request: grpcReq('/pkg.Ratings/Get'),
      want: 'prod/h r0',
    },
    {
      name: 'GRPCRoute preferred over HTTPRoute for gRPC requests',
      routes: [
        grpc({ name: 'g', rules: [[svc('pkg.Reviews')]] }),
        http({ name: 'h', rules: [[exact('/pkg.Reviews/Get')]] }),
      ],
      request: grpcReq('/pkg.Reviews/Get'),
      want: 'prod/g r0',
    },
    {
      name: 'plain HTTP request ignores GRPCRoutes',
      routes: [grpc({ name: 'g', rules: [undefined] })],
      request: req('/pkg.Reviews/Get', 'POST'),
      want: null,
    },
    {
      name: 'consumer GRPCRoute beats producer',
      routes: [
        grpc({ name: 'p', rules: [[svc('pkg.Reviews', 'Get')]] }),
        grpc({
          name: 'c',
          namespace: 'shop',
          parent: { kind: 'Service', name: 'reviews', namespace: 'prod' },
          rules: [undefined],
        }),
      ],
      client: 'shop',
      request: grpcReq('/pkg.Reviews/Get'),
      want: 'shop/c r0',
    },
  ];
  for (const row of grows) {
    it(row.name, () => {
      for (const routes of [row.routes, [...row.routes].reverse()]) {
        const table = compileRoutes(SVC, routes, row.client ?? 'prod');
        assert.ok(table);
        const m = table.match(row.request);
        assert.equal(m ? `${m.routeLabel} ${m.ruleName}` : null, row.want);
      }
    });
  }

  it('a MeshRequest-shaped grpc flag overrides content-type', () => {
    const table = compileRoutes(SVC, [grpc({ name: 'g', rules: [undefined] })], 'prod')!;
    assert.equal(table.match({ method: 'POST', path: '/a/b', headers: {}, grpc: true })?.kind, 'GRPCRoute');
    assert.equal(
      table.match(req('/a/b', 'POST', { 'content-type': 'application/grpc+proto' }))?.kind,
      'GRPCRoute',
    );
  });
});
