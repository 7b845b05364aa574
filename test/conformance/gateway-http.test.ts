/**
 * Gateway API conformance, Gateway-profile HTTPRoute tests whose behaviour applies to a
 * Service parent (GAMMA), ported from kubernetes-sigs/gateway-api `conformance/tests/`. The
 * route attaches to Service `echo` instead of a Gateway; infra-backend-vN is echo-vN; the
 * request's Host names the parent Service (a mesh routes by it) instead of a Gateway hostname.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';
import {
  MESH_NS,
  caseName,
  expectResponse,
  httpRoute,
  send,
  type Echoed,
  type ExpectedResponse,
} from './mesh-harness.ts';
import {
  HEADER_MATCHING_CASES,
  MODIFY_HEADERS,
  backend,
  echoParent as parent,
  headerMatchingRules,
  prefix,
  useMesh,
} from './suite.ts';

const mesh = useMesh();
const client = () => mesh.clients[MESH_NS];
const ns = MESH_NS;

const modifiedRequest = (path: string) => ({
  request: {
    path,
    headers: {
      'X-Header-Add': 'header-val-1',
      'X-Header-Add-Append': 'append-val-1,header-val-2',
      'X-Header-Set': 'set-overwrites-values',
    },
  },
  absentHeaders: ['X-Header-Remove'],
});
const modifyRequestHeaders = { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1' };
const mirrorTo = (name: string, extra: Record<string, unknown> = {}) => ({
  type: 'RequestMirror',
  requestMirror: { backendRef: { name, namespace: ns, port: 80 }, ...extra },
});

/** Upstream's ExpectMirroredRequest: each mirror pod logs a request for `path` (eventually). */
async function expectMirrored(pods: ('echo-v2' | 'echo-v3')[], path: string, since: Record<string, number>) {
  const deadline = Date.now() + 10_000;
  for (const pod of pods) {
    for (;;) {
      if (mesh.seen[pod].slice(since[pod]).some((e: Echoed) => e.path === path)) break;
      if (Date.now() > deadline) assert.fail(`no mirrored request for ${path} in ${pod}'s log`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
const logMarks = () => ({
  'echo-v1': mesh.seen['echo-v1'].length,
  'echo-v2': mesh.seen['echo-v2'].length,
  'echo-v3': mesh.seen['echo-v3'].length,
});

describe('Gateway-profile HTTPRoute tests on a Service parent', () => {
  test('HTTPRouteHeaderMatching', async (t) => {
    mesh.apply([
      httpRoute('matching', { parentRefs: [parent], rules: headerMatchingRules((name) => backend(name)) }),
    ]);
    const cases = HEADER_MATCHING_CASES.map(([headers, to]): ExpectedResponse =>
      to
        ? { request: { path: '/', headers }, backend: to, namespace: ns }
        : { request: { path: '/', headers }, response: { statusCode: 404 } },
    );
    for (const [i, tc] of cases.entries()) await t.test(caseName(tc, i), () => expectResponse(client(), tc));
  });

  test('HTTPRouteMethodMatching', async (t) => {
    const to = (name: string, ...matches: Record<string, unknown>[]) => ({
      matches,
      backendRefs: [backend(name)],
    });
    const version = (value: string) => [{ name: 'version', value }];
    mesh.apply([
      httpRoute('method-matching', {
        parentRefs: [parent],
        rules: [
          to('echo-v1', { method: 'POST' }),
          to('echo-v2', { method: 'GET' }),
          to('echo-v1', { ...prefix('/path1'), method: 'GET' }),
          to('echo-v2', { headers: version('one'), method: 'PUT' }),
          to('echo-v3', { ...prefix('/path2'), headers: version('two'), method: 'POST' }),
          to(
            'echo-v1',
            { ...prefix('/path3'), method: 'PATCH' },
            { ...prefix('/path4'), headers: version('three'), method: 'DELETE' },
          ),
          to('echo-v1', prefix('/path5')),
          to('echo-v2', { method: 'PATCH' }),
          to('echo-v3', { headers: version('four') }),
        ],
      }),
    ]);
    const cases: ExpectedResponse[] = [
      { request: { method: 'POST', path: '/' }, backend: 'echo-v1', namespace: ns },
      { request: { method: 'GET', path: '/' }, backend: 'echo-v2', namespace: ns },
      { request: { method: 'HEAD', path: '/' }, response: { statusCode: 404 } },
      { request: { path: '/path1', method: 'GET' }, backend: 'echo-v1', namespace: ns },
      {
        request: { headers: { version: 'one' }, path: '/', method: 'PUT' },
        backend: 'echo-v2',
        namespace: ns,
      },
      {
        request: { headers: { version: 'two' }, path: '/path2', method: 'POST' },
        backend: 'echo-v3',
        namespace: ns,
      },
      { request: { path: '/path3', method: 'PATCH' }, backend: 'echo-v1', namespace: ns },
      {
        request: { headers: { version: 'three' }, path: '/path4', method: 'DELETE' },
        backend: 'echo-v1',
        namespace: ns,
      },
      { request: { path: '/', method: 'PUT' }, response: { statusCode: 404 } },
      { request: { path: '/path4', method: 'DELETE' }, response: { statusCode: 404 } },
      { request: { path: '/path5', method: 'PATCH' }, backend: 'echo-v1', namespace: ns },
      {
        request: { headers: { version: 'four' }, path: '/', method: 'PATCH' },
        backend: 'echo-v2',
        namespace: ns,
      },
    ];
    for (const [i, tc] of cases.entries()) await t.test(caseName(tc, i), () => expectResponse(client(), tc));
  });

  test('HTTPRouteResponseHeaderModifier', async (t) => {
    const hv = (name: string, value: string) => ({ name, value });
    const rule = (path: string, responseHeaderModifier: Record<string, unknown>) => ({
      matches: [prefix(path)],
      filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier }],
      backendRefs: [backend('echo-v1')],
    });
    mesh.apply([
      httpRoute('response-header-modifier', {
        parentRefs: [parent],
        rules: [
          rule('/set', { set: [hv('X-Header-Set', 'set-overwrites-values')] }),
          rule('/add', { add: [hv('X-Header-Add', 'add-appends-values')] }),
          rule('/remove', { remove: ['X-Header-Remove'] }),
          rule('/multiple', {
            set: [hv('X-Header-Set-1', 'header-set-1'), hv('X-Header-Set-2', 'header-set-2')],
            add: [
              hv('X-Header-Add-1', 'header-add-1'),
              hv('X-Header-Add-2', 'header-add-2'),
              hv('X-Header-Add-3', 'header-add-3'),
            ],
            remove: ['X-Header-Remove-1', 'X-Header-Remove-2'],
          }),
          rule('/case-insensitivity', {
            set: [hv('X-Header-Set', 'header-set')],
            add: [hv('X-Header-Add', 'header-add')],
            remove: ['X-Header-Remove'],
          }),
        ],
      }),
    ]);
    // The backend answers the headers named in X-Echo-Set-Header (upstream's echo-basic).
    const c = (
      path: string,
      backendSets: string | undefined,
      headers: Record<string, string>,
      absentHeaders?: string[],
    ): ExpectedResponse => ({
      request: {
        path,
        headers: backendSets ? { 'X-Echo-Set-Header': backendSets } : {},
      },
      response: { statusCode: 200, headers, ...(absentHeaders ? { absentHeaders } : {}) },
      backend: 'echo-v1',
      namespace: ns,
    });
    const cases = [
      c('/set', 'Some-Other-Header:val', {
        'Some-Other-Header': 'val',
        'X-Header-Set': 'set-overwrites-values',
      }),
      c('/set', 'Some-Other-Header:val,X-Header-Set:some-other-value', {
        'Some-Other-Header': 'val',
        'X-Header-Set': 'set-overwrites-values',
      }),
      c('/add', 'Some-Other-Header:val', {
        'Some-Other-Header': 'val',
        'X-Header-Add': 'add-appends-values',
      }),
      c('/add', 'Some-Other-Header:val,X-Header-Add:some-other-value', {
        'Some-Other-Header': 'val',
        'X-Header-Add': 'some-other-value,add-appends-values',
      }),
      c('/remove', 'X-Header-Remove:val', {}, ['X-Header-Remove']),
      c(
        '/multiple',
        'X-Header-Set-2:set-val-2,X-Header-Add-2:add-val-2,X-Header-Remove-2:remove-val-2,Another-Header:another-header-val',
        {
          'X-Header-Set-1': 'header-set-1',
          'X-Header-Set-2': 'header-set-2',
          'X-Header-Add-1': 'header-add-1',
          'X-Header-Add-2': 'add-val-2,header-add-2',
          'X-Header-Add-3': 'header-add-3',
          'Another-Header': 'another-header-val',
        },
        ['X-Header-Remove-1', 'X-Header-Remove-2'],
      ),
      c(
        '/case-insensitivity',
        'x-header-set:original-val-set,x-header-add:original-val-add,x-header-remove:original-val-remove,Another-Header:another-header-val',
        {
          'X-Header-Set': 'header-set',
          'X-Header-Add': 'original-val-add,header-add',
          'Another-Header': 'another-header-val',
        },
        ['x-header-remove', 'X-Header-Remove'],
      ),
    ];
    for (const [i, tc] of cases.entries())
      await t.test(caseName(tc, i), () =>
        expectResponse(client(), { ...tc, expectedRequest: { request: { path: tc.request.path } } }),
      );
  });

  test('HTTPRouteRewriteHost', async (t) => {
    const rewrite = (path: string, hostname: string, to: string, headers = false) => ({
      matches: [prefix(path)],
      filters: [{ type: 'URLRewrite', urlRewrite: { hostname } }, ...(headers ? [MODIFY_HEADERS] : [])],
      backendRefs: [backend(to)],
    });
    mesh.apply([
      httpRoute('rewrite-host', {
        parentRefs: [parent],
        rules: [
          rewrite('/one', 'one.example.org', 'echo-v1'),
          rewrite('/two', 'example.org', 'echo-v2'),
          rewrite('/rewrite-host-and-modify-headers', 'test.example.org', 'echo-v2', true),
        ],
      }),
    ]);
    const cases: ExpectedResponse[] = [
      {
        request: { path: '/one', host: 'echo' },
        expectedRequest: { request: { path: '/one', host: 'one.example.org' } },
        backend: 'echo-v1',
        namespace: ns,
      },
      {
        request: { path: '/two', host: 'echo' },
        expectedRequest: { request: { path: '/two', host: 'example.org' } },
        backend: 'echo-v2',
        namespace: ns,
      },
      {
        request: { path: '/rewrite-host-and-modify-headers', host: 'echo', headers: modifyRequestHeaders },
        expectedRequest: {
          ...modifiedRequest('/rewrite-host-and-modify-headers'),
          request: {
            ...modifiedRequest('/rewrite-host-and-modify-headers').request,
            host: 'test.example.org',
          },
        },
        backend: 'echo-v2',
        namespace: ns,
      },
    ];
    for (const [i, tc] of cases.entries()) await t.test(caseName(tc, i), () => expectResponse(client(), tc));
  });

  test('HTTPRouteRequestMirror', async (t) => {
    mesh.apply([
      httpRoute('request-mirror', {
        parentRefs: [parent],
        rules: [
          { matches: [prefix('/mirror')], filters: [mirrorTo('echo-v2')], backendRefs: [backend('echo-v1')] },
          {
            matches: [prefix('/mirror-and-modify-headers')],
            filters: [MODIFY_HEADERS, mirrorTo('echo-v2')],
            backendRefs: [backend('echo-v1')],
          },
        ],
      }),
    ]);
    const cases: ExpectedResponse[] = [
      {
        request: { path: '/mirror' },
        expectedRequest: { request: { path: '/mirror' } },
        backend: 'echo-v1',
        namespace: ns,
      },
      {
        request: { path: '/mirror-and-modify-headers', headers: modifyRequestHeaders },
        expectedRequest: modifiedRequest('/mirror-and-modify-headers'),
        backend: 'echo-v1',
        namespace: ns,
      },
    ];
    for (const [i, tc] of cases.entries())
      await t.test(caseName(tc, i), async () => {
        const since = logMarks();
        await expectResponse(client(), tc);
        await expectMirrored(['echo-v2'], tc.request.path!, since);
      });
  });

  test('HTTPRouteRequestMultipleMirrors', async (t) => {
    mesh.apply([
      httpRoute('request-multiple-mirrors', {
        parentRefs: [parent],
        rules: [
          {
            matches: [prefix('/multi-mirror')],
            filters: [mirrorTo('echo-v2'), mirrorTo('echo-v3')],
            backendRefs: [backend('echo-v1')],
          },
          {
            matches: [prefix('/multi-mirror-and-modify-request-headers')],
            filters: [MODIFY_HEADERS, mirrorTo('echo-v2'), mirrorTo('echo-v3')],
            backendRefs: [backend('echo-v1')],
          },
        ],
      }),
    ]);
    const cases: ExpectedResponse[] = [
      {
        request: { path: '/multi-mirror' },
        expectedRequest: { request: { path: '/multi-mirror' } },
        backend: 'echo-v1',
        namespace: ns,
      },
      {
        request: { path: '/multi-mirror-and-modify-request-headers', headers: modifyRequestHeaders },
        expectedRequest: modifiedRequest('/multi-mirror-and-modify-request-headers'),
        backend: 'echo-v1',
        namespace: ns,
      },
    ];
    for (const [i, tc] of cases.entries())
      await t.test(caseName(tc, i), async () => {
        const since = logMarks();
        await expectResponse(client(), tc);
        await expectMirrored(['echo-v2', 'echo-v3'], tc.request.path!, since);
      });
  });

  test('HTTPRouteRequestPercentageMirror', async (t) => {
    mesh.apply([
      httpRoute('request-percentage-mirror', {
        parentRefs: [parent],
        rules: [
          {
            matches: [prefix('/percent-mirror')],
            filters: [mirrorTo('echo-v2', { percent: 20 })],
            backendRefs: [backend('echo-v1')],
          },
          {
            matches: [prefix('/percent-mirror-fraction')],
            filters: [mirrorTo('echo-v2', { fraction: { numerator: 50, denominator: 100 } })],
            backendRefs: [backend('echo-v1')],
          },
          {
            matches: [prefix('/percent-mirror-and-modify-headers')],
            filters: [MODIFY_HEADERS, mirrorTo('echo-v2', { percent: 35 })],
            backendRefs: [backend('echo-v1')],
          },
        ],
      }),
    ]);
    const cases: (ExpectedResponse & { percent: number })[] = [
      {
        request: { path: '/percent-mirror' },
        expectedRequest: { request: { path: '/percent-mirror' } },
        backend: 'echo-v1',
        namespace: ns,
        percent: 20,
      },
      {
        request: { path: '/percent-mirror-fraction' },
        expectedRequest: { request: { path: '/percent-mirror-fraction' } },
        backend: 'echo-v1',
        namespace: ns,
        percent: 50,
      },
      {
        request: { path: '/percent-mirror-and-modify-headers', headers: modifyRequestHeaders },
        expectedRequest: modifiedRequest('/percent-mirror-and-modify-headers'),
        backend: 'echo-v1',
        namespace: ns,
        percent: 35,
      },
    ];
    for (const [i, tc] of cases.entries())
      await t.test(caseName(tc, i), async () => {
        await expectResponse(client(), tc);
        // As upstream: 500 requests, 10 at a time; mirrored count within 5% of the expected; 5 tries.
        const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
        try {
          let last = '';
          for (let k = 0; k < 5; k++) {
            const since = mesh.seen['echo-v2'].length;
            let next = 0;
            const worker = async () => {
              while (next < 500) {
                next++;
                const res = await send(client(), tc.request, agent);
                assert.equal(res.status, 200, res.text);
              }
            };
            await Promise.all(Array.from({ length: 10 }, worker));
            const expected = (500 * tc.percent) / 100;
            // Mirrors are fire-and-forget: let the last copies land.
            await new Promise((r) => setTimeout(r, 300));
            const actual = mesh.seen['echo-v2'].slice(since).filter((e) => e.path === tc.request.path).length;
            if (actual >= expected * 0.95 && actual <= expected * 1.05) return;
            last = `expected ${expected} ±5%, got ${actual}`;
          }
          assert.fail(`Percentage based mirror distribution tests failed: ${last}`);
        } finally {
          agent.destroy();
        }
      });
  });
});
