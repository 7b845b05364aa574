import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MeshRequest, MeshResponse, RequestContext } from '../core/dispatch.ts';
import { httpFilterSchema, httpRouteSchema, type HTTPRouteFilter } from '../../config/resources.ts';
import {
  applyRequestHeaderModifier,
  applyResponseHeaderModifier,
  applyUrlRewrite,
  buildRedirect,
  compileFilter,
  mirrorTarget,
  MirrorSampler,
  redirectLocation,
  rewritePath,
  shadowAuthority,
  type CompiledFilter,
} from './filters.ts';
import { applyRequestFilters, applyResponseFilters, compileRoutes } from './route-table.ts';

function compiled(f: unknown): CompiledFilter {
  return compileFilter(httpFilterSchema.parse(f) as HTTPRouteFilter, 'prod');
}

function meshRequest(
  path: string,
  headers: MeshRequest['headers'] = {},
  authority = 'reviews:9080',
): MeshRequest {
  return {
    method: 'GET',
    authority,
    path,
    headers,
    body: null,
    protocol: 'http1',
    grpc: false,
    ctx: {} as RequestContext,
  };
}

describe('RequestHeaderModifier / ResponseHeaderModifier', () => {
  const f = compiled({
    type: 'RequestHeaderModifier',
    requestHeaderModifier: {
      set: [{ name: 'X-Set', value: 'new' }],
      add: [
        { name: 'X-Add', value: 'b' },
        { name: 'X-Fresh', value: 'f' },
      ],
      remove: ['X-Gone'],
    },
  });
  assert.equal(f.type, 'RequestHeaderModifier');
  const mod = f.type === 'RequestHeaderModifier' ? f.modifier : assert.fail();

  it('sets, appends and removes with case-insensitive names, without mutating the input', () => {
    const headers = { 'x-set': 'old', 'x-add': 'a', 'x-gone': 'bye', other: 'kept' };
    const req = meshRequest('/', headers);
    const out = applyRequestHeaderModifier(req, mod);
    assert.deepEqual(out.headers, { 'x-set': 'new', 'x-add': ['a', 'b'], 'x-fresh': 'f', other: 'kept' });
    assert.deepEqual(headers, { 'x-set': 'old', 'x-add': 'a', 'x-gone': 'bye', other: 'kept' });
    assert.equal(out.ctx, req.ctx);
  });

  it('appends to an existing list', () => {
    const out = applyRequestHeaderModifier(meshRequest('/', { 'x-add': ['1', '2'] }), mod);
    assert.deepEqual(out.headers['x-add'], ['1', '2', 'b']);
  });

  it('modifies response headers', () => {
    const rf = compiled({
      type: 'ResponseHeaderModifier',
      responseHeaderModifier: { set: [{ name: 'Cache-Control', value: 'no-store' }], remove: ['Server'] },
    });
    const rmod = rf.type === 'ResponseHeaderModifier' ? rf.modifier : assert.fail();
    const res: MeshResponse = {
      status: 200,
      headers: { server: 'x', 'cache-control': 'max-age=60' },
      body: null,
    };
    const out = applyResponseHeaderModifier(res, rmod);
    assert.deepEqual(out.headers, { 'cache-control': 'no-store' });
    assert.equal(out.status, 200);
    assert.deepEqual(res.headers, { server: 'x', 'cache-control': 'max-age=60' });
  });
});

describe('rewritePath ReplacePrefixMatch (Gateway API table)', () => {
  const cases: [path: string, prefix: string, replacement: string, want: string][] = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
    ['/foo/x', '/foo', '/', '/x'],
    ['/foo/x', '/foo', '/bar', '/bar/x'],
    ['/foo/x?a=1&b=/foo', '/foo', '/bar', '/bar/x?a=1&b=/foo'],
    ['/foo?q', '/foo', '/', '/?q'],
    ['/', '/', '/bar', '/bar'],
    ['/x/y', '/', '/bar', '/bar/x/y'],
    ['/x', '/', '/', '/x'],
    ['/a/b/c', '/a/b', '/z', '/z/c'],
  ];
  for (const [path, prefix, replacement, want] of cases) {
    it(`${path} prefix ${prefix} → ${JSON.stringify(replacement)} = ${want}`, () => {
      const f = compiled({
        type: 'URLRewrite',
        urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: replacement } },
      });
      const rw = f.type === 'URLRewrite' ? f.rewrite : assert.fail();
      assert.equal(rewritePath(path, rw.path!, prefix), want);
    });
  }

  it('regex-matched rule (no prefix) leaves the path alone', () => {
    assert.equal(rewritePath('/foo/x', { type: 'ReplacePrefixMatch', value: '/bar' }, undefined), '/foo/x');
  });

  it('ReplaceFullPath keeps the query', () => {
    assert.equal(rewritePath('/a/b?x=1', { type: 'ReplaceFullPath', value: '/new' }, '/a'), '/new?x=1');
    assert.equal(rewritePath('/a/b', { type: 'ReplaceFullPath', value: '/new' }, undefined), '/new');
  });
});

describe('URLRewrite', () => {
  it('replaces the authority (and a carried host header) and the path', () => {
    const f = compiled({
      type: 'URLRewrite',
      urlRewrite: {
        hostname: 'ratings.prod',
        path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' },
      },
    });
    const rw = f.type === 'URLRewrite' ? f.rewrite : assert.fail();
    const req = meshRequest('/v1/items?id=3', { host: 'reviews:9080', a: 'b' });
    const out = applyUrlRewrite(req, rw, '/v1');
    assert.equal(out.authority, 'ratings.prod');
    assert.equal(out.headers.host, 'ratings.prod');
    assert.equal(out.headers.a, 'b');
    assert.equal(out.path, '/v2/items?id=3');
    assert.equal(req.path, '/v1/items?id=3');
    assert.equal(req.authority, 'reviews:9080');
  });
});

describe('RequestRedirect', () => {
  const redirect = (r: Record<string, unknown>) => {
    const f = compiled({ type: 'RequestRedirect', requestRedirect: r });
    return f.type === 'RequestRedirect' ? f.redirect : assert.fail();
  };
  const cases: [name: string, r: Record<string, unknown>, authority: string, path: string, want: string][] = [
    ['defaults keep host, port and path', {}, 'reviews:9080', '/a?x=1', 'http://reviews:9080/a?x=1'],
    ['no port in authority', {}, 'reviews', '/a', 'http://reviews/a'],
    [
      'scheme https drops the port (well-known 443)',
      { scheme: 'https' },
      'reviews:9080',
      '/a',
      'https://reviews/a',
    ],
    [
      'scheme http drops the port (well-known 80)',
      { scheme: 'http' },
      'reviews:9080',
      '/a',
      'http://reviews/a',
    ],
    ['explicit port kept', { scheme: 'https', port: 8443 }, 'reviews', '/', 'https://reviews:8443/'],
    ['explicit default port omitted', { scheme: 'https', port: 443 }, 'reviews', '/', 'https://reviews/'],
    ['http port 80 in authority omitted', {}, 'reviews:80', '/', 'http://reviews/'],
    [
      'hostname replaced, original port kept',
      { hostname: 'example.com' },
      'reviews:9080',
      '/',
      'http://example.com:9080/',
    ],
    [
      'hostname and port',
      { hostname: 'example.com', port: 8080 },
      'reviews:9080',
      '/p',
      'http://example.com:8080/p',
    ],
    [
      'full path replaced, query kept',
      { path: { type: 'ReplaceFullPath', replaceFullPath: '/new' } },
      'reviews',
      '/old/x?q=1',
      'http://reviews/new?q=1',
    ],
    [
      'prefix replaced',
      { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } },
      'reviews',
      '/v1/x',
      'http://reviews/v2/x',
    ],
    ['IPv6 authority', { port: 8080 }, '[::1]:9080', '/', 'http://[::1]:8080/'],
  ];
  for (const [name, r, authority, path, want] of cases) {
    it(name, () => {
      assert.equal(redirectLocation({ authority, path }, redirect(r), '/v1'), want);
    });
  }

  it('request scheme https is kept and its default port dropped', () => {
    assert.equal(
      redirectLocation({ authority: 'a:443', path: '/' }, redirect({}), undefined, 'https'),
      'https://a/',
    );
  });

  it('builds a 302 by default with an empty body', () => {
    const res = buildRedirect(meshRequest('/x'), redirect({ hostname: 'b' }), '/');
    assert.equal(res.status, 302);
    assert.equal(res.body, null);
    assert.equal(res.headers.location, 'http://b:9080/x');
    assert.equal(res.headers['content-length'], '0');
  });

  it('uses the configured status code', () => {
    assert.equal(buildRedirect(meshRequest('/x'), redirect({ statusCode: 301 }), '/').status, 301);
  });
});

describe('RequestMirror', () => {
  const mirror = (m: Record<string, unknown>) => {
    const f = compiled({ type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow' }, ...m } });
    return f.type === 'RequestMirror' ? f.mirror : assert.fail();
  };

  it('a sampler copies exactly percent of any run of requests, from any start (issue 12)', () => {
    for (const [m, p] of [
      [mirror({ percent: 20 }), 0.2],
      [mirror({ percent: 35 }), 0.35],
      [mirror({ fraction: { numerator: 1, denominator: 3 } }), 1 / 3],
    ] as const)
      for (const start of [0, 0.5, 0.999]) {
        const s = new MirrorSampler(m, () => start);
        let n = 0;
        for (let i = 0; i < 500; i++) if (s.next()) n++;
        assert.ok(Math.abs(n - 500 * p) <= 1, `${n} of 500 at ${p} from ${start}`);
      }
    assert.equal(new MirrorSampler(mirror({ percent: 0 })).next(), undefined);
    assert.ok(new MirrorSampler(mirror({})).next());
  });

  it('mirrors everything when neither percent nor fraction is set', () => {
    const m = mirror({});
    assert.deepEqual(
      mirrorTarget(m, () => 0.999),
      { name: 'shadow', namespace: 'prod', port: undefined, weight: 1 },
    );
  });

  it('percent decides by random', () => {
    const m = mirror({ percent: 25 });
    assert.ok(mirrorTarget(m, () => 0.2));
    assert.equal(
      mirrorTarget(m, () => 0.25),
      undefined,
    );
    assert.equal(
      mirrorTarget(m, () => 0.9),
      undefined,
    );
    assert.equal(
      mirrorTarget(mirror({ percent: 0 }), () => 0),
      undefined,
    );
    assert.ok(mirrorTarget(mirror({ percent: 100 }), () => 0.99999));
  });

  it('fraction decides by random', () => {
    const m = mirror({ fraction: { numerator: 1, denominator: 1000 } });
    assert.ok(mirrorTarget(m, () => 0.0009));
    assert.equal(
      mirrorTarget(m, () => 0.001),
      undefined,
    );
    let n = 0;
    for (let i = 0; i < 10_000; i++)
      if (mirrorTarget(mirror({ fraction: { numerator: 3, denominator: 10 } }), () => i / 10_000)) n++;
    assert.equal(n, 3000);
  });

  it('shadow authority appends -shadow to the host', () => {
    assert.equal(shadowAuthority('reviews:9080'), 'reviews-shadow:9080');
    assert.equal(shadowAuthority('reviews.prod.svc.cluster.local'), 'reviews.prod.svc.cluster.local-shadow');
  });
});

describe('applyRequestFilters / applyResponseFilters', () => {
  it('apply a rule filters in config order with its matched prefix', () => {
    const route = httpRouteSchema.parse({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'r', namespace: 'prod' },
      spec: {
        parentRefs: [{ name: 'reviews' }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
            filters: [
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { set: [{ name: 'x-step', value: '1' }] },
              },
              {
                type: 'URLRewrite',
                urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } },
              },
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { add: [{ name: 'x-step', value: '2' }] },
              },
              {
                type: 'ResponseHeaderModifier',
                responseHeaderModifier: { add: [{ name: 'x-route', value: 'r' }] },
              },
            ],
            backendRefs: [{ name: 'reviews', port: 9080 }],
          },
        ],
      },
    });
    const rule = compileRoutes({ name: 'reviews', namespace: 'prod' }, [route], 'prod')!.match(
      meshRequest('/old/a'),
    )!;
    const out = applyRequestFilters(rule, meshRequest('/old/a?z=1'));
    assert.equal(out.path, '/new/a?z=1');
    assert.deepEqual(out.headers['x-step'], ['1', '2']);
    const res = applyResponseFilters(rule, { status: 200, headers: {}, body: null });
    assert.equal(res.headers['x-route'], 'r');
    assert.equal(rule.redirect, undefined);
  });
});
