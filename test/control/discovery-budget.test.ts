/**
 * Issue 10: discovery send buffers have a global budget. Stalled proxies (raw WebSocket
 * clients whose sockets stop reading) cannot take the control plane's memory: past the
 * budget the ones holding the most are cut with 4008 and a logged reason, the rest keep
 * their streams. Bounded: 6 clients, a fixed number of snapshots each.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CLOSE } from '../../src/control/discovery/protocol.ts';
import { RawClient, startHarness, until, type Harness } from './discovery-support.ts';

const MiB = 1024 * 1024;
const BUDGET = 16 * MiB;

describe('issue 10: discovery send budget', () => {
  let h: Harness;
  const logs: string[] = [];
  const clients: RawClient[] = [];

  before(async () => {
    h = await startHarness({ sendBudget: BUDGET, log: (l) => logs.push(l) });
    // ~1 MiB in every snapshot of `big` (its Service resource), so a few snapshots fill a socket.
    await h.putResource({
      apiVersion: 'hexmesh.io/v1alpha1',
      kind: 'Service',
      metadata: { name: 'big', annotations: { blob: 'x'.repeat(MiB) } },
      spec: { ports: [{ port: 80 }] },
    } as never);
  });

  after(async () => {
    for (const c of clients) c.ws.terminate();
    await h.close();
  });

  it('cuts the slowest proxies with 4008 once all proxies together hold more than the budget', async () => {
    for (let i = 0; i < 6; i++) {
      const c = new RawClient(h.port);
      clients.push(c);
      await c.opened;
      c.hello({ id: `stalled-${i}`, service: 'big' });
      await c.next((m) => m.type === 'snapshot', 15_000);
      // Stop reading: from here the kernel buffers fill, then the server's send buffer grows.
      (c.ws as unknown as { _socket: Socket })._socket.pause();
    }
    const fast = new RawClient(h.port);
    clients.push(fast);
    await fast.opened;
    fast.hello({ id: 'reader', service: 'big' });
    await fast.next((m) => m.type === 'snapshot', 15_000);

    // Each subscribe answers with a full snapshot (~1 MiB): 40 per stalled proxy, 240 MiB asked for.
    let maxUnsent = 0;
    for (let round = 0; round < 40; round++) {
      for (const c of clients.slice(0, 6)) if (!c.closed) c.send({ type: 'subscribe', services: ['big'] });
      fast.send({ type: 'subscribe', services: ['big'] });
      await new Promise((r) => setTimeout(r, 30));
      maxUnsent = Math.max(maxUnsent, h.discovery.unsent);
    }
    await until(() => logs.some((l) => /send budget/.test(l)), 10_000, 'a budget cut logged');
    const cut = logs.filter((l) =>
      /cut slow proxy stalled-\d+: .* over the send budget of 16\.0 MiB/.test(l),
    );
    assert.ok(cut.length >= 1, logs.join('\n'));
    // Bounded: never much more than the budget plus one snapshot per stream in flight.
    assert.ok(maxUnsent < BUDGET + 8 * MiB, `unsent peaked at ${(maxUnsent / MiB).toFixed(1)} MiB`);
    const live = h.discovery.proxies().map((p) => p.id);
    assert.ok(live.includes('reader'), 'a proxy that reads keeps its stream');
    assert.ok(live.length < 7, `some stalled proxies were cut: ${live.join(', ')}`);

    // A cut proxy that reads again gets the reason code after the data already queued.
    const cutId = /cut slow proxy (stalled-\d+)/.exec(cut.at(-1)!)![1];
    const c = clients[Number(cutId.split('-')[1])];
    (c.ws as unknown as { _socket: Socket })._socket.resume();
    const closed = await c.whenClosed(10_000);
    assert.equal(closed.code, CLOSE.slowConsumer, JSON.stringify(closed));
    assert.match(closed.reason, /too slow/);
  });
});
