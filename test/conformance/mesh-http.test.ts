/**
 * Gateway API conformance, MESH-HTTP profile, ported from kubernetes-sigs/gateway-api
 * `conformance/tests/mesh/` (test names, manifests, requests and expectations as upstream;
 * manifests written as objects). One mesh for the whole file: echo-v1 / echo-v2 behind real
 * sidecars, client sidecars standing for the suite's echo-v1 pod (mesh-harness.ts).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';
import {
  CONSUMER_NS,
  MESH_NS,
  caseName,
  expectResponse,
  httpRoute,
  send,
  type ExpectedResponse,
} from './mesh-harness.ts';
import { MODIFY_HEADERS, backend, echoParent, exact, prefix, useMesh } from './suite.ts';

const mesh = useMesh();

/** Run upstream's table: one subtest per case, named as upstream names it. */
async function runCases(
  t: { test: (name: string, fn: () => Promise<void>) => Promise<void> },
  cases: (ExpectedResponse & { name?: string })[],
  client = () => mesh.clients[MESH_NS],
): Promise<void> {
  for (const [i, c] of cases.entries())
    await t.test(caseName(c, i, c.name), () => expectResponse(client(), c));
}

describe('MESH-HTTP core', () => {
  test('MeshBasic', async (t) => {
    mesh.apply([]);
    await runCases(t, [{ request: { host: 'echo', method: 'GET' }, response: { statusCode: 200 } }]);
  });

  test('MeshPorts', async (t) => {
    mesh.apply([
      httpRoute('mesh-split-v1', {
        parentRefs: [{ group: '', kind: 'Service', name: 'echo-v1', port: 80 }],
        rules: [
          {
            filters: [
              {
                type: 'ResponseHeaderModifier',
                responseHeaderModifier: { set: [{ name: 'X-Header-Set', value: 'v1' }] },
              },
            ],
            backendRefs: [backend('echo-v1')],
          },
        ],
      }),
      httpRoute('mesh-split-v2', {
        parentRefs: [{ group: '', kind: 'Service', name: 'echo-v2' }],
        rules: [
          {
            filters: [
              {
                type: 'ResponseHeaderModifier',
                responseHeaderModifier: { set: [{ name: 'X-Header-Set', value: 'v2' }] },
              },
            ],
            backendRefs: [backend('echo-v2')],
          },
        ],
      }),
    ]);
    await runCases(t, [
      {
        name: 'Explicit port set, send to that port',
        request: { host: 'echo-v1', method: 'GET' },
        response: { statusCode: 200, headers: { 'X-Header-Set': 'v1' } },
        backend: 'echo-v1',
      },
      {
        name: 'Explicit port, send to an excluded port',
        request: { host: 'echo-v1:8080', method: 'GET' },
        response: { statusCode: 200, absentHeaders: ['X-Header-Set'] },
        backend: 'echo-v1',
      },
      {
        name: 'No port set',
        request: { host: 'echo-v2', method: 'GET' },
        response: { statusCode: 200, headers: { 'X-Header-Set': 'v2' } },
        backend: 'echo-v2',
      },
      {
        name: 'No port set (8080)',
        request: { host: 'echo-v2:8080', method: 'GET' },
        response: { statusCode: 200, headers: { 'X-Header-Set': 'v2' } },
        backend: 'echo-v2',
      },
    ]);
  });

  const meshFrontend = () =>
    httpRoute('mesh-split-v1', {
      parentRefs: [{ group: '', kind: 'Service', name: 'echo-v2' }],
      rules: [
        {
          filters: [
            {
              type: 'ResponseHeaderModifier',
              responseHeaderModifier: { set: [{ name: 'X-Header-Set', value: 'set' }] },
            },
          ],
          backendRefs: [backend('echo-v2')],
        },
      ],
    });

  test('MeshFrontend', async (t) => {
    mesh.apply([meshFrontend()]);
    const v2 = mesh.pods['echo-v2'];
    await runCases(t, [
      {
        name: 'Send to service',
        request: { host: 'echo-v2', method: 'GET' },
        response: { statusCode: 200, headers: { 'X-Header-Set': 'set' } },
        backend: 'echo-v2',
      },
      {
        // Upstream dials the pod IP on 8080; here a pod's address is its sidecar's inbound listener.
        name: 'Send to pod IP',
        request: { host: `${v2.address}:${v2.port}`, method: 'GET' },
        response: { statusCode: 200, absentHeaders: ['X-Header-Set'] },
        backend: 'echo-v2',
      },
    ]);
  });

  test(
    'MeshFrontendHostname',
    {
      skip: 'extended feature MeshClusterIPMatching: the outbound listener routes by Host; Services have no virtual IP',
    },
    () => {},
  );

  test('MeshTrafficSplit', async (t) => {
    mesh.apply([
      httpRoute('mesh-split', {
        parentRefs: [{ group: '', kind: 'Service', name: 'echo' }],
        rules: [
          { matches: [exact('/v1')], backendRefs: [backend('echo-v1')] },
          { matches: [exact('/v2')], backendRefs: [backend('echo-v2')] },
        ],
      }),
    ]);
    await runCases(t, [
      {
        request: { host: 'echo', method: 'GET', path: '/v1' },
        response: { statusCode: 200 },
        backend: 'echo-v1',
      },
      {
        request: { host: 'echo', method: 'GET', path: '/v2' },
        response: { statusCode: 200 },
        backend: 'echo-v2',
      },
    ]);
  });

  test('MeshHTTPRouteMatching', async (t) => {
    mesh.apply([
      httpRoute('mesh-matching', {
        parentRefs: [echoParent],
        rules: [
          {
            matches: [prefix('/'), { headers: [{ name: 'version', value: 'one' }] }],
            backendRefs: [backend('echo-v1', 8080)],
          },
          {
            matches: [prefix('/v2'), { headers: [{ name: 'version', value: 'two' }] }],
            backendRefs: [backend('echo-v2', 8080)],
          },
        ],
      }),
    ]);
    const ns = MESH_NS;
    await runCases(t, [
      { request: { path: '/' }, backend: 'echo-v1', namespace: ns },
      { request: { path: '/example' }, backend: 'echo-v1', namespace: ns },
      { request: { path: '/', headers: { Version: 'one' } }, backend: 'echo-v1', namespace: ns },
      { request: { path: '/v2' }, backend: 'echo-v2', namespace: ns },
      { request: { path: '/v2/example' }, backend: 'echo-v2', namespace: ns },
      { request: { path: '/', headers: { Version: 'two' } }, backend: 'echo-v2', namespace: ns },
      { request: { path: '/v2/' }, backend: 'echo-v2', namespace: ns },
      { request: { path: '/v2example' }, backend: 'echo-v1', namespace: ns },
      { request: { path: '/foo/v2/example' }, backend: 'echo-v1', namespace: ns },
    ]);
  });

  test('MeshHTTPRouteSimpleSameNamespace', async (t) => {
    mesh.apply([
      httpRoute('mesh-simple', { parentRefs: [echoParent], rules: [{ backendRefs: [backend('echo-v1')] }] }),
    ]);
    await runCases(t, [
      {
        name: 'Simple HTTP request should reach infra-backend',
        request: { path: '/', host: 'echo' },
        response: { statusCode: 200 },
        backend: 'echo-v1',
        namespace: MESH_NS,
      },
    ]);
  });

  test('MeshHTTPRouteRedirectHostAndStatus', async (t) => {
    const redirect = (path: string, requestRedirect: Record<string, unknown>) => ({
      matches: [prefix(path)],
      filters: [{ type: 'RequestRedirect', requestRedirect }],
    });
    mesh.apply([
      httpRoute('mesh-redirect-host-and-status', {
        parentRefs: [echoParent],
        rules: [
          redirect('/hostname-redirect', { hostname: 'example.org' }),
          redirect('/host-and-status', { statusCode: 301, hostname: 'example.org' }),
          redirect('/host-and-temporary', { statusCode: 307, hostname: 'example.org' }),
          redirect('/host-and-permanent', { statusCode: 308, hostname: 'example.org' }),
        ],
      }),
    ]);
    await runCases(t, [
      {
        request: { host: 'echo', path: '/hostname-redirect' },
        response: { statusCode: 302 },
        redirectRequest: { host: 'example.org' },
        namespace: MESH_NS,
      },
      {
        request: { host: 'echo', path: '/host-and-status' },
        response: { statusCode: 301 },
        redirectRequest: { host: 'example.org' },
        namespace: MESH_NS,
      },
    ]);
  });
});

describe('MESH-HTTP extended', () => {
  test('MeshConsumerRoute', async (t) => {
    mesh.apply([
      httpRoute(
        'mesh-consumer-route',
        {
          parentRefs: [{ group: '', kind: 'Service', name: 'echo-v1', namespace: MESH_NS }],
          rules: [
            {
              filters: [
                {
                  type: 'ResponseHeaderModifier',
                  responseHeaderModifier: { set: [{ name: 'X-Header-Set', value: 'set' }] },
                },
              ],
              backendRefs: [{ name: 'echo-v1', namespace: MESH_NS, port: 80 }],
            },
          ],
        },
        CONSUMER_NS,
      ),
    ]);
    await t.test("request from consumer route's namespace modified by HTTPRoute", () =>
      expectResponse(mesh.clients[CONSUMER_NS], {
        request: { host: `echo-v1.${MESH_NS}`, method: 'GET', path: '/' },
        response: { statusCode: 200, headers: { 'X-Header-Set': 'set' } },
        backend: 'echo-v1',
      }),
    );
    await t.test("request not from consumer route's namespace not modified by HTTPRoute", () =>
      expectResponse(mesh.clients[MESH_NS], {
        request: { host: `echo-v1.${MESH_NS}`, method: 'GET', path: '/' },
        response: { statusCode: 200, absentHeaders: ['X-Header-Set'] },
        backend: 'echo-v1',
      }),
    );
  });

  test('MeshHTTPRouteQueryParamMatching', async (t) => {
    const q = (name: string, value: string) => ({ name, value });
    mesh.apply([
      httpRoute('mesh-query-param-matching', {
        parentRefs: [echoParent],
        rules: [
          { matches: [{ queryParams: [q('animal', 'whale')] }], backendRefs: [backend('echo-v1', 8080)] },
          { matches: [{ queryParams: [q('animal', 'dolphin')] }], backendRefs: [backend('echo-v2', 8080)] },
          {
            matches: [{ ...prefix('/path1'), queryParams: [q('animal', 'whale')] }],
            backendRefs: [backend('echo-v1', 8080)],
          },
          {
            matches: [{ headers: [{ name: 'version', value: 'one' }], queryParams: [q('animal', 'whale')] }],
            backendRefs: [backend('echo-v2', 8080)],
          },
          {
            matches: [
              { ...prefix('/path3'), queryParams: [q('animal', 'shark')] },
              {
                ...prefix('/path4'),
                headers: [{ name: 'version', value: 'three' }],
                queryParams: [q('animal', 'kraken')],
              },
            ],
            backendRefs: [backend('echo-v1', 8080)],
          },
          { matches: [prefix('/path5')], backendRefs: [backend('echo-v1', 8080)] },
          { matches: [{ queryParams: [q('animal', 'hydra')] }], backendRefs: [backend('echo-v2', 8080)] },
        ],
      }),
    ]);
    const ns = MESH_NS;
    await runCases(t, [
      { request: { path: '/?animal=whale' }, backend: 'echo-v1', namespace: ns },
      { request: { path: '/?animal=dolphin' }, backend: 'echo-v2', namespace: ns },
      { request: { path: '/?animal=whale&otherparam=irrelevant' }, backend: 'echo-v1', namespace: ns },
      { request: { path: '/?animal=dolphin&color=yellow' }, backend: 'echo-v2', namespace: ns },
      { request: { path: '/?color=blue' }, response: { statusCode: 404 } },
      { request: { path: '/?animal=dog' }, response: { statusCode: 404 } },
      { request: { path: '/?animal=whaledolphin' }, response: { statusCode: 404 } },
      { request: { path: '/' }, response: { statusCode: 404 } },
      { request: { path: '/path1?animal=whale' }, backend: 'echo-v1', namespace: ns },
      { request: { headers: { version: 'one' }, path: '/?animal=whale' }, backend: 'echo-v2', namespace: ns },
      { request: { path: '/path3?animal=shark' }, backend: 'echo-v1', namespace: ns },
      {
        request: { headers: { version: 'three' }, path: '/path4?animal=kraken' },
        backend: 'echo-v1',
        namespace: ns,
      },
      { request: { path: '/?animal=shark' }, response: { statusCode: 404 } },
      { request: { path: '/path4?animal=kraken' }, response: { statusCode: 404 } },
      { request: { path: '/path5?animal=hydra' }, backend: 'echo-v1', namespace: ns },
    ]);
  });

  const headerModifierCases: ExpectedResponse[] = [
    {
      request: { path: '/set', headers: { 'Some-Other-Header': 'val' } },
      expectedRequest: {
        request: {
          path: '/set',
          headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' },
        },
      },
      backend: 'echo-v1',
      namespace: MESH_NS,
    },
    {
      request: { path: '/set', headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' } },
      expectedRequest: {
        request: {
          path: '/set',
          headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' },
        },
      },
      backend: 'echo-v1',
      namespace: MESH_NS,
    },
    {
      request: { path: '/add', headers: { 'Some-Other-Header': 'val' } },
      expectedRequest: {
        request: {
          path: '/add',
          headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' },
        },
      },
      backend: 'echo-v1',
      namespace: MESH_NS,
    },
    {
      request: { path: '/add', headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' } },
      expectedRequest: {
        request: {
          path: '/add',
          headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' },
        },
      },
      backend: 'echo-v1',
      namespace: MESH_NS,
    },
    {
      request: { path: '/remove', headers: { 'X-Header-Remove': 'val' } },
      expectedRequest: { request: { path: '/remove', headers: {} }, absentHeaders: ['X-Header-Remove'] },
      backend: 'echo-v1',
      namespace: MESH_NS,
    },
    {
      request: {
        path: '/multiple',
        headers: {
          'X-Header-Set-2': 'set-val-2',
          'X-Header-Add-2': 'add-val-2',
          'X-Header-Remove-2': 'remove-val-2',
          'Another-Header': 'another-header-val',
        },
      },
      expectedRequest: {
        request: {
          path: '/multiple',
          headers: {
            'X-Header-Set-1': 'header-set-1',
            'X-Header-Set-2': 'header-set-2',
            'X-Header-Add-1': 'header-add-1',
            'X-Header-Add-2': 'add-val-2,header-add-2',
            'X-Header-Add-3': 'header-add-3',
            'Another-Header': 'another-header-val',
          },
        },
        absentHeaders: ['X-Header-Remove-1', 'X-Header-Remove-2'],
      },
      backend: 'echo-v1',
      namespace: MESH_NS,
    },
    {
      request: {
        path: '/case-insensitivity',
        headers: {
          'x-header-set': 'original-val-set',
          'x-header-add': 'original-val-add',
          'x-header-remove': 'original-val-remove',
          'Another-Header': 'another-header-val',
        },
      },
      expectedRequest: {
        request: {
          path: '/case-insensitivity',
          headers: {
            'X-Header-Set': 'header-set',
            'X-Header-Add': 'original-val-add,header-add',
            'Another-Header': 'another-header-val',
          },
        },
        absentHeaders: ['x-header-remove', 'X-Header-Remove'],
      },
      backend: 'echo-v1',
      namespace: MESH_NS,
    },
  ];
  /** The rules of upstream's httproute-request-header-modifier(-backend).yaml; `where` puts the filter on the rule or the backendRef. */
  const headerModifierRules = (where: 'rule' | 'backend') => {
    const hv = (name: string, value: string) => ({ name, value });
    const modifiers: [string, Record<string, unknown>][] = [
      ['/set', { set: [hv('X-Header-Set', 'set-overwrites-values')] }],
      ['/add', { add: [hv('X-Header-Add', 'add-appends-values')] }],
      ['/remove', { remove: ['X-Header-Remove'] }],
      [
        '/multiple',
        {
          set: [hv('X-Header-Set-1', 'header-set-1'), hv('X-Header-Set-2', 'header-set-2')],
          add: [
            hv('X-Header-Add-1', 'header-add-1'),
            hv('X-Header-Add-2', 'header-add-2'),
            hv('X-Header-Add-3', 'header-add-3'),
          ],
          remove: ['X-Header-Remove-1', 'X-Header-Remove-2'],
        },
      ],
      [
        '/case-insensitivity',
        {
          set: [hv('X-Header-Set', 'header-set')],
          add: [hv('X-Header-Add', 'header-add')],
          remove: ['X-Header-Remove'],
        },
      ],
    ];
    return modifiers.map(([path, requestHeaderModifier]) => {
      const filters = [{ type: 'RequestHeaderModifier', requestHeaderModifier }];
      return where === 'rule'
        ? { matches: [prefix(path)], filters, backendRefs: [backend('echo-v1', 8080)] }
        : { matches: [prefix(path)], backendRefs: [backend('echo-v1', 8080, { filters })] };
    });
  };

  test('MeshHTTPRouteRequestHeaderModifier', async (t) => {
    mesh.apply([
      httpRoute('mesh-request-header-modifier', {
        parentRefs: [echoParent],
        rules: headerModifierRules('rule'),
      }),
    ]);
    await runCases(t, headerModifierCases);
  });

  test('MeshHTTPRouteBackendRequestHeaderModifier', async (t) => {
    mesh.apply([
      httpRoute('mesh-request-header-modifier', {
        parentRefs: [echoParent],
        rules: headerModifierRules('backend'),
      }),
    ]);
    await runCases(t, headerModifierCases);
  });

  // MeshHTTPRoute303Redirect / 307 / 308 (upstream httproute-30x-redirect.go): a redirect with
  // only a status code keeps scheme, host and path.
  for (const code of [303, 307, 308])
    test(`MeshHTTPRoute${code}Redirect`, async (t) => {
      mesh.apply([
        httpRoute(`mesh-${code}-redirect`, {
          parentRefs: [echoParent],
          rules: [
            {
              matches: [prefix('/redirect')],
              filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: code } }],
            },
          ],
        }),
      ]);
      await runCases(t, [
        {
          request: { path: '/redirect' },
          response: { statusCode: code },
          redirectRequest: { path: '/redirect' },
          namespace: MESH_NS,
        },
      ]);
    });

  // Upstream's ShortName repeats MeshHTTPRouteRedirectHostAndStatus; named here after its Go variable.
  test('MeshHTTPRouteAdditionalRedirectHostAndStatus', async (t) => {
    const redirect = (path: string, statusCode: number) => ({
      matches: [prefix(path)],
      filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'example.org', statusCode } }],
    });
    mesh.apply([
      httpRoute('mesh-additional-redirect-host-and-status', {
        parentRefs: [echoParent],
        rules: [redirect('/host-and-status-temporary', 307), redirect('/host-and-status-permanent', 308)],
      }),
    ]);
    await runCases(t, [
      {
        request: { host: 'echo', path: '/host-and-status-temporary' },
        response: { statusCode: 307 },
        redirectRequest: { host: 'example.org' },
        namespace: MESH_NS,
      },
      {
        request: { host: 'echo', path: '/host-and-status-permanent' },
        response: { statusCode: 308 },
        redirectRequest: { host: 'example.org' },
        namespace: MESH_NS,
      },
    ]);
  });

  test('MeshHTTPRouteRedirectPath', async (t) => {
    const redirect = (path: string, requestRedirect: Record<string, unknown>) => ({
      matches: [prefix(path)],
      filters: [{ type: 'RequestRedirect', requestRedirect }],
    });
    const replacePrefix = { type: 'ReplacePrefixMatch', replacePrefixMatch: '/replacement-prefix' };
    const replaceFull = { type: 'ReplaceFullPath', replaceFullPath: '/replacement-full' };
    mesh.apply([
      httpRoute('mesh-redirect-path', {
        parentRefs: [echoParent],
        rules: [
          redirect('/original-prefix', { path: replacePrefix }),
          redirect('/full', { path: { type: 'ReplaceFullPath', replaceFullPath: '/full-path-replacement' } }),
          redirect('/path-and-host', { hostname: 'example.org', path: replacePrefix }),
          redirect('/path-and-status', { path: replacePrefix, statusCode: 301 }),
          redirect('/path-and-temporary', { path: replacePrefix, statusCode: 307 }),
          redirect('/path-and-permanent', { path: replacePrefix, statusCode: 308 }),
          redirect('/full-path-and-host', { hostname: 'example.org', path: replaceFull }),
          redirect('/full-path-and-status', { path: replaceFull, statusCode: 301 }),
          redirect('/full-path-and-temporary', { path: replaceFull, statusCode: 307 }),
          redirect('/full-path-and-permanent', { path: replaceFull, statusCode: 308 }),
        ],
      }),
    ]);
    const r = (path: string, statusCode: number, redirectRequest: ExpectedResponse['redirectRequest']) => ({
      request: { host: 'echo', path },
      response: { statusCode },
      redirectRequest,
      namespace: MESH_NS,
    });
    await runCases(t, [
      r('/original-prefix/lemon', 302, { path: '/replacement-prefix/lemon' }),
      r('/full/path/original', 302, { path: '/full-path-replacement' }),
      r('/path-and-host', 302, { host: 'example.org', path: '/replacement-prefix' }),
      r('/path-and-status', 301, { path: '/replacement-prefix' }),
      r('/full-path-and-host', 302, { host: 'example.org', path: '/replacement-full' }),
      r('/full-path-and-status', 301, { path: '/replacement-full' }),
    ]);
  });

  test('MeshHTTPRouteRedirectPort', async (t) => {
    const redirect = (path: string, requestRedirect: Record<string, unknown>) => ({
      matches: [prefix(path)],
      filters: [{ type: 'RequestRedirect', requestRedirect }],
    });
    mesh.apply([
      httpRoute('mesh-redirect-port', {
        parentRefs: [echoParent],
        rules: [
          redirect('/port', { port: 8083 }),
          redirect('/port-and-host', { hostname: 'example.org', port: 8083 }),
          redirect('/port-and-status', { port: 8083, statusCode: 301 }),
          redirect('/port-and-temporary', { port: 8083, statusCode: 307 }),
          redirect('/port-and-permanent', { port: 8083, statusCode: 308 }),
          redirect('/port-and-host-and-status', { port: 8083, hostname: 'example.org', statusCode: 302 }),
        ],
      }),
    ]);
    const r = (path: string, statusCode: number, redirectRequest: ExpectedResponse['redirectRequest']) => ({
      request: { host: 'echo', path },
      response: { statusCode },
      redirectRequest,
      namespace: MESH_NS,
    });
    await runCases(t, [
      r('/port', 302, { port: '8083' }),
      r('/port-and-host', 302, { host: 'example.org', port: '8083' }),
      r('/port-and-status', 301, { port: '8083' }),
      r('/port-and-host-and-status', 302, { port: '8083', host: 'example.org' }),
    ]);
  });

  test('MeshHTTPRouteSchemeRedirect', async (t) => {
    const redirect = (path: string, requestRedirect: Record<string, unknown>) => ({
      matches: [prefix(path)],
      filters: [{ type: 'RequestRedirect', requestRedirect }],
    });
    mesh.apply([
      httpRoute('mesh-redirect-scheme', {
        parentRefs: [echoParent],
        rules: [
          redirect('/scheme', { scheme: 'https' }),
          redirect('/scheme-and-host', { hostname: 'example.org', scheme: 'https' }),
          redirect('/scheme-and-status', { scheme: 'https', statusCode: 301 }),
          redirect('/scheme-and-temporary', { scheme: 'https', statusCode: 307 }),
          redirect('/scheme-and-permanent', { scheme: 'https', statusCode: 308 }),
          redirect('/scheme-and-host-and-status', {
            scheme: 'https',
            statusCode: 302,
            hostname: 'example.org',
          }),
        ],
      }),
    ]);
    const r = (path: string, statusCode: number, redirectRequest: ExpectedResponse['redirectRequest']) => ({
      request: { host: 'echo', path },
      response: { statusCode },
      redirectRequest,
      namespace: MESH_NS,
    });
    await runCases(t, [
      r('/scheme', 302, { scheme: 'https' }),
      r('/scheme-and-host', 302, { host: 'example.org', scheme: 'https' }),
      r('/scheme-and-status', 301, { scheme: 'https' }),
      r('/scheme-and-host-and-status', 302, { scheme: 'https', host: 'example.org' }),
    ]);
  });

  test('MeshHTTPRouteRewritePath', async (t) => {
    const rewrite = (path: string, p: Record<string, unknown>, headers = false) => ({
      matches: [prefix(path)],
      filters: [{ type: 'URLRewrite', urlRewrite: { path: p } }, ...(headers ? [MODIFY_HEADERS] : [])],
      backendRefs: [backend('echo-v1')],
    });
    mesh.apply([
      httpRoute('mesh-rewrite-path', {
        parentRefs: [echoParent],
        rules: [
          rewrite('/prefix/one', { type: 'ReplacePrefixMatch', replacePrefixMatch: '/one' }),
          rewrite('/strip-prefix', { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' }),
          rewrite('/full/one', { type: 'ReplaceFullPath', replaceFullPath: '/one' }),
          rewrite(
            '/full/rewrite-path-and-modify-headers',
            { type: 'ReplaceFullPath', replaceFullPath: '/test' },
            true,
          ),
          rewrite(
            '/prefix/rewrite-path-and-modify-headers',
            { type: 'ReplacePrefixMatch', replacePrefixMatch: '/prefix' },
            true,
          ),
        ],
      }),
    ]);
    const sent = {
      'X-Header-Remove': 'remove-val',
      'X-Header-Add-Append': 'append-val-1',
      'X-Header-Set': 'set-val',
    };
    const seen = {
      'X-Header-Add': 'header-val-1',
      'X-Header-Add-Append': 'append-val-1,header-val-2',
      'X-Header-Set': 'set-overwrites-values',
    };
    const c = (path: string, want: string, headers?: boolean): ExpectedResponse => ({
      request: { path, host: 'echo', ...(headers ? { headers: sent } : {}) },
      expectedRequest: headers
        ? { request: { path: want, headers: seen }, absentHeaders: ['X-Header-Remove'] }
        : { request: { path: want } },
      backend: 'echo-v1',
      namespace: MESH_NS,
    });
    await runCases(t, [
      c('/prefix/one/two', '/one/two'),
      c('/strip-prefix/three', '/three'),
      c('/strip-prefix', '/'),
      c('/full/one/two', '/one'),
      c('/full/rewrite-path-and-modify-headers/test', '/test', true),
      c('/prefix/rewrite-path-and-modify-headers/one', '/prefix/one', true),
    ]);
  });

  test('MeshHTTPRouteNamedRule', async (t) => {
    mesh.apply([
      httpRoute('http-named-rules', {
        parentRefs: [echoParent],
        rules: [
          { name: 'named-rule', matches: [prefix('/named')], backendRefs: [backend('echo-v1', 8080)] },
          { matches: [prefix('/unnamed')], backendRefs: [backend('echo-v2', 8080)] },
        ],
      }),
    ]);
    await runCases(t, [
      { request: { host: 'echo', path: '/named' }, backend: 'echo-v1', namespace: MESH_NS },
      { request: { host: 'echo', path: '/unnamed' }, backend: 'echo-v2', namespace: MESH_NS },
    ]);
  });

  test('MeshHTTPRouteWeight', async (t) => {
    mesh.apply([
      httpRoute('mesh-weighted-backends', {
        parentRefs: [echoParent],
        rules: [
          { backendRefs: [backend('echo-v1', 80, { weight: 70 }), backend('echo-v2', 80, { weight: 30 })] },
        ],
      }),
    ]);
    await t.test('Requests should have a distribution that matches the weight', async () => {
      const client = mesh.clients[MESH_NS];
      await expectResponse(client, { request: { path: '/', host: 'echo' }, namespace: MESH_NS });
      // As upstream: 500 requests, 10 at a time, within 5 percentage points; up to 10 tries.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
      try {
        let last = '';
        for (let attempt = 0; attempt < 10; attempt++) {
          const seen: Record<string, number> = {};
          let next = 0;
          const worker = async () => {
            while (next < 500) {
              next++;
              const res = await send(
                client,
                {
                  path: '/',
                  host: 'echo',
                  headers: { 'X-Jitter': String(Math.floor(Math.random() * 10_000)) },
                },
                agent,
              );
              assert.equal(res.status, 200, res.text);
              const who = res.echoed!.pod.startsWith('echo-v1') ? 'echo-v1' : 'echo-v2';
              seen[who] = (seen[who] ?? 0) + 1;
            }
          };
          await Promise.all(Array.from({ length: 10 }, worker));
          const v1 = (seen['echo-v1'] ?? 0) / 500;
          const v2 = (seen['echo-v2'] ?? 0) / 500;
          if (Math.abs(v1 - 0.7) <= 0.05 && Math.abs(v2 - 0.3) <= 0.05) return;
          last = `echo-v1 ${v1}, echo-v2 ${v2}`;
        }
        assert.fail(`Weighted distribution tests failed: ${last}`);
      } finally {
        agent.destroy();
      }
    });
  });
});

describe('hexmesh additions (not upstream tests)', () => {
  // Every answer the mesh makes up names its cause: x-hexmesh-error and a one-line body.
  test('synthetic answers carry x-hexmesh-error and a one-line cause', async (t) => {
    mesh.apply([
      httpRoute('synthetic', {
        parentRefs: [echoParent],
        rules: [
          { matches: [exact('/no-backend')], backendRefs: [] },
          { matches: [exact('/slow')], backendRefs: [backend('echo-v1')], timeouts: { request: '100ms' } },
        ],
      }),
    ]);
    const cases: [string, { host: string; path: string }, number, string][] = [
      ['no rule matches', { host: 'echo', path: '/none' }, 404, 'no-route'],
      ['unknown service', { host: 'nope', path: '/' }, 404, 'unknown-service'],
      ['rule without backends', { host: 'echo', path: '/no-backend' }, 500, 'internal'],
      [
        'request timeout',
        { host: 'echo', path: '/slow?uuid=synthetic-1&responseCode=500&succeedAfter=1&delayRetry=1s' },
        504,
        'timeout',
      ],
    ];
    for (const [name, req, status, code] of cases)
      await t.test(name, async () => {
        const res = await send(mesh.clients[MESH_NS], req);
        assert.equal(res.status, status, res.text);
        assert.equal(res.headers['x-hexmesh-error'], code);
        const body = res.text.trimEnd();
        assert.ok(body.length > 0 && !body.includes('\n'), `one-line cause: ${JSON.stringify(res.text)}`);
      });
  });
});
