/**
 * `/v1/watch` races that only a network store shows (SlowStore over a real SQLite store):
 * a watch without fromIndex must not miss writes made while the backend acknowledges it,
 * and a client gone while the handler ran must not keep its slot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, eventually, startCp, tempStore } from './helpers.ts';
import { SlowStore, sleep } from './slow-store.ts';

test('a watch without fromIndex answers its headers at once and sees a write made right after them', async () => {
  const s = await tempStore();
  const slow = new SlowStore(s.store);
  const t = await startCp({ store: slow });
  slow.watchAckMs = 300;
  const ac = new AbortController();
  try {
    const asked = Date.now();
    const res = await fetch(`${t.url}/v1/watch?prefix=kv/race/`, { signal: ac.signal });
    assert.equal(res.status, 200);
    assert.ok(Date.now() - asked < 5000, 'headers came before the first heartbeat (15 s)');
    const index = Number(res.headers.get('x-hexmesh-index'));
    const put = await call(t.url, 'PUT', '/v1/kv/race/a', '1');
    assert.ok(put.index! > index, 'the header index precedes the write');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const deadline = Date.now() + 3000;
    while (!text.includes('race/a') && Date.now() < deadline) {
      const r = await Promise.race([reader.read(), sleep(deadline - Date.now()).then(() => undefined)]);
      if (!r || r.done) break;
      text += decoder.decode(r.value, { stream: true });
    }
    assert.match(text, /"key":"kv\/race\/a"/, 'the write is on the stream');
  } finally {
    ac.abort();
    await t.close();
    await slow.close();
    await s.close();
  }
});

test('a watch whose client leaves before its handler answers gives its slot back', async () => {
  const s = await tempStore();
  const slow = new SlowStore(s.store);
  const t = await startCp({ store: slow });
  slow.revisionDelayMs = 300;
  try {
    const ac = new AbortController();
    const pending = fetch(`${t.url}/v1/watch?prefix=kv`, { signal: ac.signal }).catch(() => undefined);
    await sleep(100);
    ac.abort();
    await pending;
    await sleep(500);
    await eventually('slot released', async () => t.cp.slots.used === 0, 2000);
  } finally {
    await t.close();
    await slow.close();
    await s.close();
  }
});
