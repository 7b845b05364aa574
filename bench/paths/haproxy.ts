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

function config(listen: number, next: number, side: 'client' | 'server', certs?: BenchCerts): string {
  const bindTls =
    side === 'server' && certs ? ` ssl crt ${certs.serverPem} ca-file ${certs.caCert} verify required` : '';
  const serverTls =
    side === 'client' && certs
      ? ` ssl crt ${certs.clientPem} ca-file ${certs.caCert} verify required verifyhost upstream sni str(upstream)`
      : '';
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
  bind 127.0.0.1:${listen}${bindTls}
  default_backend be

backend be
  server next 127.0.0.1:${next}${serverTls}
`;
}

export const startHaproxy: PathStarter = async (ctx) => {
  const clientPort = await freePort();
  const serverPort = await freePort();
  const serverCfg = join(ctx.tmpDir, `haproxy-server-${serverPort}.cfg`);
  const clientCfg = join(ctx.tmpDir, `haproxy-client-${clientPort}.cfg`);
  writeFileSync(serverCfg, config(serverPort, ctx.upstreamPort, 'server', ctx.certs));
  writeFileSync(clientCfg, config(clientPort, serverPort, 'client', ctx.certs));
  // -db: stay in the foreground, no daemon, so the PID we hold is the proxy itself.
  const server = ctx.group.start('haproxy-server', 'haproxy', ['-db', '-f', serverCfg]);
  const client = ctx.group.start('haproxy-client', 'haproxy', ['-db', '-f', clientCfg]);
  const close = async (): Promise<void> => {
    await Promise.all([ctx.group.stop(client), ctx.group.stop(server)]);
  };
  try {
    await waitFor200(`http://127.0.0.1:${clientPort}/`, {
      host: 'upstream',
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
