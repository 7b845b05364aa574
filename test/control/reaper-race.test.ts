/** The leader's health reaper against a status report landing in the middle of its sweep. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Catalog } from '../../src/control/catalog/catalog.ts';
import { HealthReaper } from '../../src/control/catalog/health-reaper.ts';
import { registerSchema } from '../../src/control/catalog/instance.ts';
import { tempStore } from './helpers.ts';
import { SlowStore } from './slow-store.ts';

test('a TTL pass that lands after the sweep read the catalog wins over the lapse', async () => {
  const s = await tempStore();
  const slow = new SlowStore(s.store);
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = () => now;
  const catalog = new Catalog(s.store, { now: clock });
  try {
    const input = registerSchema.parse({
      id: 'i1',
      service: 'web',
      address: '127.0.0.1',
      port: 8080,
      checks: [{ name: 'alive', type: 'ttl', ttl: '10s' }],
    });
    await catalog.register(input);
    await catalog.setStatus('default', 'web', 'i1', 'passing');
    now += 30_000; // the TTL lapsed...
    // ...but the sidecar's pass arrives right after the reaper listed the catalog.
    slow.afterRange = () => catalog.setStatus('default', 'web', 'i1', 'passing');
    const reaper = new HealthReaper(new Catalog(slow, { now: clock }), slow, {
      deregisterCriticalAfterMs: 0,
      now: clock,
    });
    const r = await reaper.sweep();
    assert.deepEqual(r.markedCritical, []);
    const [inst] = (await catalog.list('default', 'web')).instances;
    assert.equal(inst.status, 'passing');
    // With no pass since, the next sweep marks it.
    now += 30_000;
    assert.deepEqual((await reaper.sweep()).markedCritical, ['default/web/i1']);
    assert.equal((await catalog.list('default', 'web')).instances[0].status, 'critical');
  } finally {
    await slow.close();
    await s.close();
  }
});
