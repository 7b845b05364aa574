/**
 * Gateway API conformance, Gateway-profile retry tests (HTTPRouteRetry,
 * HTTPRouteRetryWithTimeouts) with the route attached to Service `echo` (GAMMA). The backend is
 * upstream echo-basic's retry simulation (mesh-harness.ts): per `uuid`, `responseCode` for the
 * first `succeedAfter` requests, each after `delayRetry`, then 200. infra-backend-v3 is echo-v3.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  MESH_NS,
  caseName,
  compare,
  expectResponse,
  httpRoute,
  send,
  type ExpectedResponse,
} from './mesh-harness.ts';
import { backend, echoParent as parent, prefix, useMesh } from './suite.ts';

const mesh = useMesh();

const rule = (path: string, extra: Record<string, unknown>) => ({
  matches: [prefix(path)],
  backendRefs: [backend('echo-v3')],
  ...extra,
});

/**
 * Upstream's assertConsistentRetryBehaviour: a fresh uuid per probe; the expectation must hold
 * on three consecutive probes within 15 s.
 */
async function expectRetryBehaviour(path: string, sim: Record<string, string>, statusCode: number) {
  const deadline = Date.now() + 15_000;
  let ok = 0;
  for (;;) {
    const query = new URLSearchParams({ ...sim, uuid: randomUUID() }).toString();
    const exp: ExpectedResponse = {
      request: { path: `${path}?${query}` },
      response: { statusCode },
      backend: 'echo-v3',
      namespace: MESH_NS,
    };
    const got = await send(mesh.clients[MESH_NS], exp.request);
    // The backend's own answer has no echo body: compare status (and, for 200, nothing else).
    const problems =
      statusCode === 200 ? (got.status === 200 ? [] : [`status ${got.status}`]) : compare(exp, got);
    ok = problems.length === 0 ? ok + 1 : 0;
    if (ok >= 3) return;
    if (Date.now() > deadline)
      assert.fail(
        `${path}?${query}: ${problems.join('; ')} (x-hexmesh-error: ${got.headers['x-hexmesh-error'] ?? '-'})`,
      );
  }
}

describe('Gateway-profile timeout tests on a Service parent', () => {
  const timeoutRule = (path: string, timeouts: Record<string, string>) => ({
    matches: [prefix(path)],
    backendRefs: [backend('echo-v1')],
    timeouts,
  });

  // Upstream's httproute-timeout-request.yaml and -backend-request.yaml: a 500 ms timeout on one
  // path, `0s` (disabled) on the other; requests with echo-basic's `?delay=1s`.
  for (const [name, route, field, path, disabled, ns] of [
    [
      'HTTPRouteTimeoutRequest',
      'request-timeout',
      'request',
      '/request-timeout',
      '/disable-request-timeout',
      MESH_NS,
    ],
    [
      'HTTPRouteTimeoutBackendRequest',
      'backend-request-timeout',
      'backendRequest',
      '/backend-timeout',
      '/disabled-backend-timeout',
      undefined,
    ],
  ] as const)
    test(name, async (t) => {
      mesh.apply([
        httpRoute(route, {
          parentRefs: [parent],
          rules: [timeoutRule(path, { [field]: '500ms' }), timeoutRule(disabled, { [field]: '0s' })],
        }),
      ]);
      const cases: ExpectedResponse[] = [
        { request: { path }, response: { statusCode: 200 }, namespace: ns },
        { request: { path: `${path}?delay=1s` }, response: { statusCode: 504 }, namespace: ns },
        { request: { path: `${disabled}?delay=1s` }, response: { statusCode: 200 }, namespace: ns },
      ];
      for (const [i, tc] of cases.entries())
        await t.test(caseName(tc, i), () => expectResponse(mesh.clients[MESH_NS], tc));
    });
});

describe('Gateway-profile retry tests on a Service parent', () => {
  test('HTTPRouteRetry', async (t) => {
    mesh.apply([
      httpRoute('retries', {
        parentRefs: [parent],
        rules: [
          rule('/retry/code-500-attempts-3', { retry: { codes: [500], attempts: 3 } }),
          rule('/retry/code-all-attempts-2', { retry: { codes: [500, 502, 503, 504], attempts: 2 } }),
          rule('/retry/code-all-attempts-0', { retry: { codes: [500, 502, 503, 504], attempts: 0 } }),
        ],
      }),
    ]);
    const cases: [string, string, Record<string, string>, number][] = [
      [
        'succeeds after 2 retries when retry is configured for status code 500 and max attempts is 3',
        '/retry/code-500-attempts-3',
        { responseCode: '500', succeedAfter: '2' },
        200,
      ],
      [
        'fails when required retries on 500 exceed max attempts',
        '/retry/code-500-attempts-3',
        { responseCode: '500', succeedAfter: '4' },
        500,
      ],
      [
        'does not retry on 503 when retry is only configured for status code 500',
        '/retry/code-500-attempts-3',
        { responseCode: '503', succeedAfter: '2' },
        503,
      ],
    ];
    for (const code of ['500', '502', '503', '504']) {
      cases.push([
        `succeeds after 1 retry on ${code} when retry is configured for all status code and max attempts is 2`,
        '/retry/code-all-attempts-2',
        { responseCode: code, succeedAfter: '1' },
        200,
      ]);
      cases.push([
        `fails when required retries on ${code} exceed max attempts`,
        '/retry/code-all-attempts-2',
        { responseCode: code, succeedAfter: '3' },
        Number(code),
      ]);
    }
    for (const [i, [name, path, sim, status]] of cases.entries())
      await t.test(`${i} request to '${path}' ${name}`, () => expectRetryBehaviour(path, sim, status));
  });

  test('HTTPRouteRetryWithTimeouts', async (t) => {
    mesh.apply([
      httpRoute('retries-with-timeouts', {
        parentRefs: [parent],
        rules: [
          rule('/retry/backend-request-timeout-200ms', {
            retry: { attempts: 2 },
            timeouts: { backendRequest: '200ms' },
          }),
          rule('/retry/request-timeout-200ms', {
            retry: { codes: [500], attempts: 5 },
            timeouts: { backendRequest: '200ms', request: '400ms' },
          }),
        ],
      }),
    ]);
    const cases: [string, string, Record<string, string>, number][] = [
      [
        'succeeds after 2 retries on backend timeout with max attempts is 3',
        '/retry/backend-request-timeout-200ms',
        { responseCode: '500', succeedAfter: '2', delayRetry: '1s' },
        200,
      ],
      [
        'fails when required retries on backend timeout exceed max attempts',
        '/retry/backend-request-timeout-200ms',
        { responseCode: '500', succeedAfter: '3', delayRetry: '1s' },
        504,
      ],
      [
        'succeeds when retries complete within the request timeout',
        '/retry/request-timeout-200ms',
        { responseCode: '500', succeedAfter: '4' },
        200,
      ],
      [
        'fails with 504 when retry delays exceed the request timeout',
        '/retry/request-timeout-200ms',
        { responseCode: '500', succeedAfter: '4', delayRetry: '100ms' },
        504,
      ],
    ];
    for (const [i, [name, path, sim, status]] of cases.entries())
      await t.test(`${i} request to '${path}' ${name}`, () => expectRetryBehaviour(path, sim, status));
  });

  test('HTTPRouteRetryConnectionError', async () => {
    mesh.apply([
      httpRoute('retries-connection-error', {
        parentRefs: [parent],
        rules: [
          {
            matches: [prefix('/retry-on-connection-errors')],
            backendRefs: [backend('infra-backend-connection-error')],
            // As upstream: set high so that a run is very unlikely to miss the healthy pod.
            retry: { attempts: 100 },
          },
        ],
      }),
    ]);
    // As upstream: ten consecutive successes, so a run is very unlikely to miss the resetting pod.
    await expectResponse(
      mesh.clients[MESH_NS],
      {
        request: { path: '/retry-on-connection-errors' },
        response: { statusCode: 200 },
        backend: 'echo-v3',
        namespace: MESH_NS,
      },
      { threshold: 10 },
    );
  });

  // hexmesh's addition: upstream's ten successes in a row can pass without any retry (here 1
  // request in 8 meets the resetting pod); every one of 40 must succeed.
  test('HTTPRouteRetryConnectionError: every request succeeds', async () => {
    for (let i = 0; i < 40; i++) {
      const res = await send(mesh.clients[MESH_NS], { path: '/retry-on-connection-errors' });
      assert.equal(res.status, 200, `request ${i}: ${res.status} ${res.headers['x-hexmesh-error'] ?? ''}`);
    }
  });
});
