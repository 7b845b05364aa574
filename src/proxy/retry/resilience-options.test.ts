import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpRouteSchema, trafficPolicySpecSchema } from '../../config/resources.ts';
import { resolveResilience } from './resilience-options.ts';
import { resilienceLayers } from './resilience-stack.ts';

test('defaults: 15 s request, per-try = request, 5 s connect, 2 retries on connect failures and resets', () => {
  const o = resolveResilience();
  assert.deepEqual(o.timeouts, { request: 15_000, perTry: 15_000, connect: 5_000 });
  assert.equal(o.retry.attempts, 2);
  assert.deepEqual(o.retry.on, ['connect-failure', 'refused-stream', 'reset']);
  assert.deepEqual(o.retry.codes, []);
  assert.deepEqual(o.retry.backoff, { base: 25, max: 250 });
  assert.deepEqual(o.retry.budget, { percent: 20, minPerSecond: 10, window: 10_000 });
  assert.equal(o.retry.retryNonIdempotent, false);
  assert.equal(o.retry.maxReplayBytes, 65_536);
  assert.equal(o.faults, null);
  assert.equal(o.rateLimit, null);
  assert.ok(Object.isFrozen(o) && Object.isFrozen(o.retry.backoff) && Object.isFrozen(o.retry.codes));
});

test('route settings override policy settings, field by field', () => {
  const route = httpRouteSchema.parse({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r' },
    spec: {
      parentRefs: [{ name: 'reviews' }],
      rules: [
        { timeouts: { request: '3s', backendRequest: '1s' }, retry: { codes: [503], backoff: '50ms' } },
      ],
    },
  });
  const policy = trafficPolicySpecSchema.parse({
    targetRef: { name: 'reviews' },
    timeouts: { request: '30s', perTry: '10s', connect: '2s' },
    retries: {
      attempts: 4,
      codes: [500],
      grpcStatuses: ['unavailable', 'cancelled'],
      retryNonIdempotent: true,
    },
    faults: { abort: { percent: 10 } },
    rateLimit: { maxTokens: 100 },
  });
  const o = resolveResilience(route.spec.rules[0], policy);
  assert.deepEqual(o.timeouts, { request: 3000, perTry: 1000, connect: 2000 });
  assert.equal(o.retry.attempts, 4, 'the route did not set attempts: the policy value stays');
  assert.deepEqual(o.retry.codes, [503], 'the route codes replace the policy codes');
  assert.deepEqual(o.retry.backoff, { base: 50, max: 500 });
  assert.deepEqual(o.retry.grpcStatuses, [14, 1]);
  assert.equal(o.retry.retryNonIdempotent, true);
  assert.ok(o.retry.on.includes('retriable-status-codes'));
  assert.deepEqual(o.faults, { abort: { percent: 10, status: 503 } });
  assert.deepEqual(o.rateLimit, { maxTokens: 100, tokensPerFill: 1, fillInterval: 1000 });
  assert.equal(resilienceLayers(o).length, 4);
});

test('a per-try timeout never exceeds the request timeout; request 0 disables', () => {
  assert.equal(
    resolveResilience({ timeouts: { request: 2000 } }, { timeouts: { perTry: 5000 } } as never).timeouts
      .perTry,
    2000,
  );
  const off = resolveResilience({ timeouts: { request: 0 } });
  assert.deepEqual([off.timeouts.request, off.timeouts.perTry], [0, 0]);
  const perTryOnly = resolveResilience({ timeouts: { request: 0, backendRequest: 500 } });
  assert.deepEqual([perTryOnly.timeouts.request, perTryOnly.timeouts.perTry], [0, 500]);
});
