import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { CancelSignal } from '../core/cancel.ts';
import { compose, type MeshResponse, type Service } from '../core/dispatch.ts';
import { resolveResilience } from '../retry/resilience-options.ts';
import { retryLayer } from '../retry/retry-layer.ts';
import { fakeRequest, fakeResponse, readAll, wait } from '../retry/test-support.ts';
import { timeoutLayer } from './timeout-layer.ts';

const T = { timeout: 10_000 };

/** An inner service that never answers on its own; it rejects when its try signal aborts. */
function hanging(seen: CancelSignal[]): Service {
  return (req) =>
    new Promise<MeshResponse>((_resolve, reject) => {
      const signal = req.ctx.trySignal!;
      seen.push(signal);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
}

test('request timeout fires with the right message and aborts the inner try', T, async () => {
  const seen: CancelSignal[] = [];
  const svc = timeoutLayer({ request: 50 })(hanging(seen));
  const req = fakeRequest({ dstService: 'ratings' });
  const started = performance.now();
  await assert.rejects(svc(req), (err: unknown) => {
    assert.ok(err instanceof HexmeshError);
    assert.equal(err.code, 'HEXMESH_ERR_TIMEOUT');
    assert.equal(err.message, 'timeout after 50 ms calling ratings');
    assert.equal(err.context.timeout, 'request');
    return true;
  });
  assert.ok(performance.now() - started >= 45);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].aborted, true);
  assert.ok(seen[0].reason instanceof HexmeshError);
  assert.equal(req.ctx.signal.aborted, false, 'the downstream signal is not ours to abort');
});

test('the deadline is set, and an earlier existing one is kept', T, async () => {
  const ok: Service = async () => fakeResponse(200);
  const r1 = fakeRequest();
  await timeoutLayer({ request: 1000 }, () => 5000)(ok)(r1);
  assert.equal(r1.ctx.deadline, 6000);
  const r2 = fakeRequest({ deadline: 5200 });
  await timeoutLayer({ request: 1000 }, () => 5000)(ok)(r2);
  assert.equal(r2.ctx.deadline, 5200);
});

test('request 0 disables the timeout', T, async () => {
  const inner: Service = async () => fakeResponse(200);
  assert.equal(timeoutLayer({ request: 0 })(inner), inner);
});

test('a downstream abort reaches the inner try through ctx.trySignal', T, async () => {
  const seen: CancelSignal[] = [];
  const ac = new AbortController();
  const pending = timeoutLayer({ request: 5000 })(hanging(seen))(fakeRequest({ signal: ac.signal }));
  await wait(5);
  ac.abort(new Error('client went away'));
  await assert.rejects(pending, /client went away/);
  assert.equal(seen[0].aborted, true);
});

test('the timeout never fires after response headers arrived; the body streams on', T, async () => {
  const seen: CancelSignal[] = [];
  const slowBody: Service = async (req) => {
    seen.push(req.ctx.trySignal!);
    await wait(5);
    async function* chunks() {
      for (let i = 0; i < 5; i++) {
        await wait(30);
        yield Buffer.from(`c${i}`);
      }
    }
    return { status: 200, headers: {}, body: Readable.from(chunks()) };
  };
  const res = await timeoutLayer({ request: 60 })(slowBody)(fakeRequest());
  assert.equal((await readAll(res.body)).toString(), 'c0c1c2c3c4'); // ~150 ms, past the 60 ms timeout
  await wait(20);
  assert.equal(seen[0].aborted, false);
});

test('a response arriving after the timeout has its body destroyed', T, async () => {
  let late: MeshResponse | undefined;
  const slow: Service = async () => {
    await wait(80);
    late = fakeResponse(200, 'late');
    return late;
  };
  await assert.rejects(timeoutLayer({ request: 20 })(slow)(fakeRequest()), { code: 'HEXMESH_ERR_TIMEOUT' });
  await wait(120);
  assert.equal(late?.body?.destroyed, true);
});

test('per-try timeout triggers a retry, which then succeeds', T, async () => {
  const opts = resolveResilience({ timeouts: { request: 5000, backendRequest: 40 } });
  const seen: CancelSignal[] = [];
  let calls = 0;
  const inner: Service = (req) => {
    calls++;
    if (calls === 1) return hanging(seen)(req);
    seen.push(req.ctx.trySignal!);
    return Promise.resolve(fakeResponse(200, 'second'));
  };
  const svc = compose([timeoutLayer(opts.timeouts), retryLayer(opts, { random: () => 0 })], inner);
  const req = fakeRequest({ method: 'GET' });
  const res = await svc(req);
  assert.equal(res.status, 200);
  assert.equal(calls, 2);
  assert.equal(req.ctx.notes.retries, 1);
  assert.equal(seen[0].aborted, true, 'the timed-out try was aborted');
  assert.equal((seen[0].reason as HexmeshError).context.timeout, 'try');
  assert.equal(seen[1].aborted, false);
  assert.notEqual(seen[0], seen[1], 'each try gets its own signal');
});

test('per-try timeout on a POST is not retried (the request was sent)', T, async () => {
  const opts = resolveResilience({ timeouts: { request: 5000, backendRequest: 30 } });
  const seen: CancelSignal[] = [];
  const svc = compose([timeoutLayer(opts.timeouts), retryLayer(opts)], hanging(seen));
  await assert.rejects(svc(fakeRequest({ method: 'POST' })), {
    code: 'HEXMESH_ERR_TIMEOUT',
    message: 'timeout after 30 ms calling reviews',
  });
  assert.equal(seen.length, 1);
});

test('the request timeout covers all tries', T, async () => {
  const opts = resolveResilience({
    timeouts: { request: 120, backendRequest: 50 },
    retry: { attempts: 10 },
  });
  const seen: CancelSignal[] = [];
  const svc = compose([timeoutLayer(opts.timeouts), retryLayer(opts, { random: () => 0 })], hanging(seen));
  const started = performance.now();
  await assert.rejects(svc(fakeRequest()), { code: 'HEXMESH_ERR_TIMEOUT' });
  const took = performance.now() - started;
  assert.ok(took >= 110 && took < 2000, `took ${took}`);
  assert.ok(seen.length >= 2 && seen.length <= 3, `${seen.length} tries`);
  await wait(10);
  assert.ok(
    seen.every((s) => s.aborted),
    'every try was aborted',
  );
});
