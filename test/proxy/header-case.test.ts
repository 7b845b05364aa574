/**
 * HTTP/1 header-name case is kept end to end between HTTP/1 peers (issue 12): the app sees the
 * client's spelling, the client sees the app's, through both sidecars (Envoy lower-cases all).
 */
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { startPair } from '../support/mesh.ts';

/** A raw HTTP/1 app: records each request head as sent, answers with mixed-case names. */
async function rawApp(heads: string[]): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      heads.push(buf.slice(0, end));
      buf = buf.slice(end + 4);
      socket.write(
        'HTTP/1.1 200 OK\r\nX-Resp-Case: v\r\nETag: "1"\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok',
      );
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Send one raw request, return the raw response head. */
function rawRequest(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(head));
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        resolve(buf.slice(0, end));
        s.destroy();
      }
    });
    s.on('error', reject);
    setTimeout(() => reject(new Error(`no response: ${JSON.stringify(buf)}`)), 10_000).unref();
  });
}

test('HTTP/1 header-name case survives client → sidecar → sidecar → app and back', async (t) => {
  const heads: string[] = [];
  const app = await rawApp(heads);
  t.after(() => app.close());
  const pair = await startPair({ service: 'echo', appPort: app.port });
  t.after(() => pair.close());
  const head = await rawRequest(
    pair.client.addr.outbound.port,
    'GET /x HTTP/1.1\r\nHost: echo\r\nX-Custom-Case: a\r\nX-UPPER: b\r\nx-lower: c\r\n\r\n',
  );
  const seen = heads.at(-1) ?? '';
  assert.match(seen, /\r\nX-Custom-Case: a\r\n/, seen);
  assert.match(seen, /\r\nX-UPPER: b\r\n/, seen);
  assert.match(seen, /\r\nx-lower: c(\r\n|$)/, seen);
  assert.match(head, /^HTTP\/1\.1 200/);
  assert.match(head, /\r\nX-Resp-Case: v\r\n/, head);
  assert.match(head, /\r\nETag: "1"\r\n/, head);
});
