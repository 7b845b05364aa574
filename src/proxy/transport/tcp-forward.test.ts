import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { ClientClosedError, forwardTcp } from './tcp-forward.ts';

function refTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

test('the client closing before the upstream connected settles the promise and stops the connect timer', async (t) => {
  // An upstream that accepts TCP but never answers the TLS handshake: "connecting" lasts
  // until the 30 s connect timeout unless something else ends it.
  const silent = new Set<net.Socket>();
  const upstream = net.createServer((s) => {
    silent.add(s);
    s.on('error', () => {});
    s.resume(); // read (and drop) the ClientHello, so the close is seen
  });
  const upPort = await listen(upstream);
  // The client's side: a real connection accepted by a listener, as the mesh listener does.
  const accepted: net.Socket[] = [];
  const front = net.createServer((s) => void accepted.push(s));
  const frontPort = await listen(front);
  t.after(() => {
    for (const s of silent) s.destroy();
    for (const s of accepted) s.destroy();
    upstream.close();
    front.close();
  });
  const peer = net.connect(frontPort, '127.0.0.1');
  peer.on('error', () => {});
  await once(front, 'connection');
  const client = accepted[0];
  client.on('error', () => {});

  const baseline = refTimers();
  let bytes: number[] | undefined;
  const forwarding = forwardTcp(client, {
    host: '127.0.0.1',
    port: upPort,
    connectTimeout: 30_000,
    idleTimeout: 60_000,
    tls: { rejectUnauthorized: false },
    onBytes: (r, w) => (bytes = [r, w]),
  });
  const settled = forwarding.then(
    () => 'resolved',
    (e: unknown) => e,
  );
  while (silent.size === 0) await new Promise((r) => setTimeout(r, 10));
  peer.destroy();

  let guard: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    settled,
    new Promise((r) => (guard = setTimeout(() => r('still pending'), 3000))),
  ]);
  clearTimeout(guard);
  assert.ok(outcome instanceof ClientClosedError, `settled with ClientClosedError, got ${String(outcome)}`);
  assert.deepEqual(bytes, [0, 0]);
  assert.equal(refTimers(), baseline, 'the connect timer was cleared');
  // The half-made upstream connection is closed too.
  for (let i = 0; i < 100 && [...silent].some((s) => !s.destroyed && !s.readableEnded); i++)
    await new Promise((r) => setTimeout(r, 20));
  assert.ok(
    [...silent].every((s) => s.destroyed || s.readableEnded),
    'upstream connection closed',
  );
});
