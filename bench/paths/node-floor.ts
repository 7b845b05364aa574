/**
 * The Node floor pair, mutual TLS between the two with the bench certificates, nothing else.
 * HTTP/1.1 (bench/floor/node-floor-proxy.ts): node:http's server, or llhttp on the socket
 * (`node-floor-lean`), and hexmesh's HTTP/1.1 hop. h2c and gRPC (`node-floor` only,
 * bench/floor/node-floor-h2-proxy.ts): Node's http2 server and client, streams piped. Run
 * beside the hexmesh and HAProxy pairs, it splits the gap between them into what Node's
 * transport costs and what hexmesh's listener and layers add.
 */
import { resolve } from 'node:path';
import { freePort } from '../lib/free-port.ts';
import { waitFor200 } from '../lib/http-probe.ts';
import { GcTrace } from '../lib/gc-trace.ts';
import type { PathStarter } from './path.ts';

const PROXY = resolve(import.meta.dirname, '..', 'floor', 'node-floor-proxy.ts');
const H2_PROXY = resolve(import.meta.dirname, '..', 'floor', 'node-floor-h2-proxy.ts');

export const startNodeFloor: PathStarter = (ctx) => start(ctx, false);
export const startNodeFloorLean: PathStarter = (ctx) => start(ctx, true);

async function start(ctx: Parameters<PathStarter>[0], lean: boolean): ReturnType<PathStarter> {
  const h2 = ctx.protocol !== 'http1';
  if (h2 && lean) throw new Error('the node-floor-lean path is HTTP/1.1 only');
  const [clientPort, serverPort] = await Promise.all([freePort(), freePort()]);
  const c = ctx.certs;
  const opts = { env: { ...process.env, NODE_ENV: 'production' }, keepStdout: true };
  const args = (listen: number, next: number, tls: string[]): string[] => [
    '--trace-gc',
    '--import',
    'tsx',
    h2 ? H2_PROXY : PROXY,
    '--listen',
    String(listen),
    '--next',
    String(next),
    ...tls,
    ...(lean ? ['--lean'] : []),
  ];
  const server = ctx.group.start(
    'floor-server',
    process.execPath,
    args(
      serverPort,
      h2 ? ctx.upstreamH2Port : ctx.upstreamPort,
      c ? ['--tls-in', `${c.serverCert},${c.serverKey},${c.caCert}`] : [],
    ),
    opts,
  );
  const client = ctx.group.start(
    'floor-client',
    process.execPath,
    args(clientPort, serverPort, c ? ['--tls-out', `${c.clientCert},${c.clientKey},${c.caCert}`] : []),
    opts,
  );
  const gc = [new GcTrace(client.child.stdout!), new GcTrace(server.child.stdout!)];
  const close = async (): Promise<void> => {
    await Promise.all([ctx.group.stop(client), ctx.group.stop(server)]);
  };
  try {
    await waitFor200(`http://127.0.0.1:${clientPort}/`, {
      host: 'upstream',
      timeoutMs: ctx.startTimeoutMs,
      watch: [client, server],
      h2,
    });
  } catch (err) {
    await close();
    throw err;
  }
  return {
    name: lean ? 'node-floor-lean' : 'node-floor',
    origin: `http://127.0.0.1:${clientPort}`,
    host: 'upstream',
    proxies: [client, server],
    gc,
    hop: c ? 'mutual TLS 1.3' : 'plaintext',
    close,
  };
}
