import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { RetryLimiter } from '../breaker/bulkhead.ts';
import type { MeshResponse } from '../core/dispatch.ts';
import { resolveResilience } from './resilience-options.ts';
import { retryLayer } from './retry-layer.ts';
import { fakeRequest, fakeResponse } from './test-support.ts';

const refused = () =>
  new HexmeshError('HEXMESH_ERR_CONNECT_FAILED', 'connect refused by 127.0.0.1:1', {
    context: { refused: 'yes' },
  });

test('connectionPool.maxRetries caps retries in flight; the slot is freed when the retry ends', async () => {
  const limiter = new RetryLimiter(1);
  const { retry, timeouts } = resolveResilience();
  let release!: (r: MeshResponse) => void;
  const held = new Promise<MeshResponse>((r) => (release = r));
  const svc = retryLayer(
    { retry, timeouts },
    { limiter, random: () => 0 },
  )(async (req) => {
    if (req.ctx.attempt === 0) throw refused();
    if (req.ctx.notes.hold) return held;
    return fakeResponse(200);
  });

  const a = fakeRequest();
  a.ctx.notes.hold = true;
  const first = svc(a);
  // Let the first request's retry start and take the only slot.
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(limiter.active, 1);
  await assert.rejects(svc(fakeRequest()), /connect refused/, 'no slot: the second is not retried');
  release(fakeResponse(200));
  assert.equal((await first).status, 200);
  assert.equal(limiter.active, 0);
  assert.equal((await svc(fakeRequest())).status, 200, 'the slot is free again');
  assert.equal(limiter.active, 0);
});
