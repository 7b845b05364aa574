/**
 * HTTP/1.1 `Upgrade` through two sidecars (client outbound → server inbound → app), seen on
 * the wire with a raw socket: the client's Upgrade token reaches the app unchanged, and a
 * refused upgrade is relayed as one correctly framed response (issue 9).
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { rawExchange } from '../support/raw.ts';
import { startHttpServer, startPair, type Pair } from '../support/mesh.ts';

let app: Awaited<ReturnType<typeof startHttpServer>>;
let mesh: Pair;
/** Upgrade tokens the app was asked for. */
const tokens: string[] = [];
/** The app's upgraded sockets (the HTTP server no longer tracks them). */
const upgraded = new Set<Duplex>();

before(async () => {
  app = await startHttpServer((_req: http.IncomingMessage, res: http.ServerResponse) => res.end('plain'));
  // Refuses upgrades to /refuse with a chunked 426 (and a trailer), accepts any other and echoes.
  app.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
    tokens.push(String(req.headers.upgrade));
    upgraded.add(socket);
    if (req.url === '/refuse') {
      socket.end(
        'HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n' +
          'trailer: x-done\r\nupgrade: other/2\r\n\r\nb\r\nfirst part;\r\nb\r\nsecond part\r\n0\r\nx-done: yes\r\n\r\n',
      );
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${req.headers.upgrade}\r\n\r\n`,
    );
    socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
  });
  mesh = await startPair({ service: 'up', appPort: app.port });
});

after(async () => {
  for (const s of upgraded) s.destroy();
  await mesh.close();
  await app.close();
});

test('Upgrade: foo/1 reaches the app as foo/1 (not websocket), and the tunnel carries bytes', async () => {
  const r = await rawExchange(
    mesh.client.addr.outbound.port,
    ['GET /tunnel HTTP/1.1\r\nHost: up\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n', 'ping'],
    { until: (d) => d.toString().includes('echo:ping'), timeoutMs: 10_000 },
  );
  assert.match(r.text, /^HTTP\/1\.1 101 /);
  assert.match(r.text, /\r\nupgrade: foo\/1\r\n/i);
  assert.ok(r.text.endsWith('echo:ping'), JSON.stringify(r.text));
  assert.deepEqual(tokens.slice(-1), ['foo/1']);
});

test('a refused upgrade with a chunked body arrives as one response, chunked framing intact', async () => {
  const r = await rawExchange(
    mesh.client.addr.outbound.port,
    'GET /refuse HTTP/1.1\r\nHost: up\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    { timeoutMs: 10_000 },
  );
  assert.ok(r.closed, 'the proxy closes the connection after the refusal');
  const headEnd = r.text.indexOf('\r\n\r\n');
  const head = r.text.slice(0, headEnd);
  assert.match(head, /^HTTP\/1\.1 426 /);
  assert.match(head, /\r\ntransfer-encoding: chunked(\r\n|$)/i);
  assert.match(head, /\r\nconnection: close(\r\n|$)/i);
  // Decode the chunked body exactly; nothing may follow its last chunk.
  let rest = r.text.slice(headEnd + 4);
  let body = '';
  for (;;) {
    const eol = rest.indexOf('\r\n');
    assert.ok(eol > 0, `chunk size line expected in ${JSON.stringify(rest)}`);
    const size = parseInt(rest.slice(0, eol), 16);
    assert.ok(Number.isInteger(size), `bad chunk size line ${JSON.stringify(rest.slice(0, eol))}`);
    rest = rest.slice(eol + 2);
    if (size === 0) break;
    body += rest.slice(0, size);
    assert.equal(rest.slice(size, size + 2), '\r\n');
    rest = rest.slice(size + 2);
  }
  assert.equal(body, 'first part;second part');
  assert.equal(rest, 'x-done: yes\r\n\r\n', 'the trailer, then the end of the message and nothing else');
});
