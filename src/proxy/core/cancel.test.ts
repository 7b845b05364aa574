import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cancel, NEVER, sleep, type CancelSignal } from './cancel.ts';

test('abort calls every listener once, in order, with the reason readable', () => {
  const c = new Cancel();
  const calls: string[] = [];
  const obj = { handleEvent: () => calls.push(`obj:${String(c.reason)}`) };
  c.addEventListener('abort', () => calls.push('fn1'));
  c.addEventListener('abort', obj);
  c.addEventListener('abort', () => calls.push('fn2'));
  c.abort('why');
  c.abort('again');
  assert.deepEqual(calls, ['fn1', 'obj:why', 'fn2']);
  assert.equal(c.aborted, true);
  assert.equal(c.reason, 'why');
  assert.equal(c.listenerCount, 0);
});

test('a listener added after the abort is never called (as AbortSignal)', () => {
  const c = new Cancel();
  c.abort();
  let called = false;
  c.addEventListener('abort', () => (called = true));
  assert.equal(called, false);
  assert.equal(c.listenerCount, 0);
});

test('the default reason is an AbortError DOMException, as AbortController.abort()', () => {
  const c = new Cancel();
  c.abort();
  const ac = new AbortController();
  ac.abort();
  assert.ok(c.reason instanceof DOMException);
  assert.equal((c.reason as DOMException).name, (ac.signal.reason as DOMException).name);
});

test('removed listeners are not called, wherever they sit', () => {
  const c = new Cancel();
  const calls: number[] = [];
  const l = [0, 1, 2, 3].map((i) => () => void calls.push(i));
  for (const f of l) c.addEventListener('abort', f);
  c.removeEventListener('abort', l[0]);
  c.removeEventListener('abort', l[2]);
  c.removeEventListener('abort', () => {}); // unknown: ignored
  assert.equal(c.listenerCount, 2);
  c.abort();
  assert.deepEqual(calls, [1, 3]);
});

test('clear() drops every listener without calling it; the signal stays usable', () => {
  const c = new Cancel();
  let called = 0;
  c.addEventListener('abort', () => called++);
  c.addEventListener('abort', () => called++);
  c.clear();
  assert.equal(c.listenerCount, 0);
  c.abort();
  assert.equal(called, 0);
  assert.equal(c.aborted, true);
});

test('sleep ends early on abort and at once on an aborted signal', async () => {
  const c = new Cancel();
  const t0 = performance.now();
  const p = sleep(60_000, c);
  setTimeout(() => c.abort(), 20);
  await p;
  assert.ok(performance.now() - t0 < 30_000);
  assert.equal(c.listenerCount, 0);
  await sleep(60_000, c); // already aborted: resolves now
  const d = new Cancel();
  await sleep(5, d);
  assert.equal(d.listenerCount, 0, 'the timer path removes its listener');
});

test('an AbortSignal and NEVER are CancelSignals too', async () => {
  const ac = new AbortController();
  const s: CancelSignal = ac.signal;
  const p = sleep(60_000, s);
  ac.abort();
  await p;
  assert.equal(NEVER.aborted, false);
  NEVER.addEventListener('abort', () => assert.fail('NEVER aborts'));
});
