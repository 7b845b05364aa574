import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { Service } from '../core/dispatch.ts';
import { fakeRequest, fakeResponse } from '../retry/test-support.ts';
import { faultLayer } from './fault-layer.ts';

const T = { timeout: 10_000 };

function counting(): { calls: number; svc: Service } {
  const c = {
    calls: 0,
    svc: async () => {
      c.calls++;
      return fakeResponse(200);
    },
  };
  return c;
}

test('abort 100% fails every request with the configured status in the error context', T, async () => {
  const inner = counting();
  const svc = faultLayer({ abort: { percent: 100, status: 418 } })(inner.svc);
  for (let i = 0; i < 20; i++) {
    const req = fakeRequest();
    await assert.rejects(svc(req), (err: unknown) => {
      assert.ok(err instanceof HexmeshError);
      assert.equal(err.code, 'HEXMESH_ERR_FAULT_INJECTED');
      assert.equal(err.context.status, 418);
      assert.equal(err.context.grpcStatus, undefined);
      assert.equal(err.message, 'fault injected: abort with status 418 calling reviews');
      return true;
    });
    assert.equal(req.ctx.notes.fault, 'abort');
  }
  assert.equal(inner.calls, 0);
});

test('abort carries the gRPC status for gRPC requests', T, async () => {
  const svc = faultLayer({ abort: { percent: 100, status: 503, grpcStatus: 8 } })(counting().svc);
  await assert.rejects(svc(fakeRequest({ grpc: true, method: 'POST' })), {
    code: 'HEXMESH_ERR_FAULT_INJECTED',
    context: { status: 503, grpcStatus: 8, service: 'reviews' },
    message: 'fault injected: abort with grpc-status 8 calling reviews',
  });
});

test('abort 0% never fires, whatever random() returns', T, async () => {
  const inner = counting();
  let r = 0;
  const random = () => (r = (r + 0.137) % 1);
  const svc = faultLayer({ abort: { percent: 0, status: 500 } }, { random })(inner.svc);
  for (let i = 0; i < 200; i++) assert.equal((await svc(fakeRequest())).status, 200);
  assert.equal(inner.calls, 200);
});

test('abort percentage follows random()', T, async () => {
  const svc = faultLayer({ abort: { percent: 30, status: 500 } }, { random: () => 0.29 })(counting().svc);
  await assert.rejects(svc(fakeRequest()), { code: 'HEXMESH_ERR_FAULT_INJECTED' });
  const svc2 = faultLayer({ abort: { percent: 30, status: 500 } }, { random: () => 0.3 })(counting().svc);
  assert.equal((await svc2(fakeRequest())).status, 200);
});

test('delay delays the request by the configured duration', T, async () => {
  const inner = counting();
  const svc = faultLayer({ delay: { percent: 100, duration: 40 } })(inner.svc);
  const req = fakeRequest();
  const started = performance.now();
  assert.equal((await svc(req)).status, 200);
  const took = performance.now() - started;
  assert.ok(took >= 35 && took < 2000, `took ${took}`);
  assert.equal(req.ctx.notes.fault, 'delay');
  const undelayed = faultLayer({ delay: { percent: 0, duration: 5000 } })(inner.svc);
  const t2 = performance.now();
  await undelayed(fakeRequest());
  assert.ok(performance.now() - t2 < 1000);
});

test('a delay is cut short by the abort signal, with its reason', T, async () => {
  const inner = counting();
  const svc = faultLayer({ delay: { percent: 100, duration: 60_000 } })(inner.svc);
  const ac = new AbortController();
  const pending = svc(fakeRequest({ signal: ac.signal }));
  setTimeout(() => ac.abort(new Error('gone')), 10);
  await assert.rejects(pending, /gone/);
  assert.equal(inner.calls, 0);
});

test('no faults configured: the layer is a pass-through', () => {
  const inner = counting().svc;
  assert.equal(faultLayer(null)(inner), inner);
  assert.equal(faultLayer({})(inner), inner);
});
