/**
 * The reference pair: two HAProxy processes (client side, server side), one thread each,
 * HTTP mode with keep-alive on both sides and connection reuse to the next hop;
 * plaintext, or mutual TLS between them when certificates are given.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../lib/free-port.ts';
import { waitFor200 } from '../lib/http-probe.ts';
import type { BenchCerts } from '../lib/tls-certs.ts';
import type { PathStarter } from './path.ts';

function config(
  listen: number,
  next: number,
  side: 'client' | 'server',
  h2: boolean,
  certs?: BenchCerts,
): string {
  // HTTP/2 end to end for h2c and gRPC: prior knowledge in cleartext, ALPN under TLS.
  const tlsIn = side === 'server' && certs !== undefined;
  const tlsOut = side === 'client' && certs !== undefined;
  let bind = tlsIn ? ` ssl crt ${certs.serverPem} ca-file ${certs.caCert} verify required` : '';
  if (h2) bind += tlsIn ? ' alpn h2' : ' proto h2';
  let server = tlsOut
    ? ` ssl crt ${certs.clientPem} ca-file ${certs.caCert} verify required verifyhost upstream sni str(upstream)`
    : '';
  if (h2) server += tlsOut ? ' alpn h2' : ' proto h2';
  return `global
  nbthread 1
  maxconn 4096
  tune.ssl.default-dh-param 2048

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  timeout http-request 10s

frontend fe
  bind 127.0.0.1:${listen}${bind}
  default_backend be

backend be
  server next 127.0.0.1:${next}${server}
`;
}

export const startHaproxy: PathStarter = async (ctx) => {
  const clientPort = await freePort();
  const serverPort = await freePort();
  const serverCfg = join(ctx.tmpDir, `haproxy-server-${serverPort}.cfg`);
  const clientCfg = join(ctx.tmpDir, `haproxy-client-${clientPort}.cfg`);
  const h2 = ctx.protocol !== 'http1';
  const app = h2 ? ctx.upstreamH2Port : ctx.upstreamPort;
  writeFileSync(serverCfg, config(serverPort, app, 'server', h2, ctx.certs));
  writeFileSync(clientCfg, config(clientPort, serverPort, 'client', h2, ctx.certs));
  // -db: stay in the foreground, no daemon, so the PID we hold is the proxy itself.
  const server = ctx.group.start('haproxy-server', 'haproxy', ['-db', '-f', serverCfg]);
  const client = ctx.group.start('haproxy-client', 'haproxy', ['-db', '-f', clientCfg]);
  const close = async (): Promise<void> => {
    await Promise.all([ctx.group.stop(client), ctx.group.stop(server)]);
  };
  try {
    await waitFor200(`http://127.0.0.1:${clientPort}/`, {
      host: 'upstream',
      h2,
      timeoutMs: ctx.startTimeoutMs,
      watch: [client, server],
    });
  } catch (err) {
    await close();
    throw err;
  }
  return {
    name: 'haproxy',
    origin: `http://127.0.0.1:${clientPort}`,
    host: 'upstream',
    proxies: [client, server],
    hop: ctx.certs ? 'mTLS' : 'plaintext',
    close,
  };
};
