/**
 * The hexmesh pair: `node dist/hexmesh.mjs proxy --config <file>` twice, a client-side
 * sidecar (outbound listener, service `bench-client`) that routes `Host: upstream` to the
 * server-side sidecar's inbound listener, which forwards to the upstream app.
 *
 * The proxies run the bundle itself, as an installed sidecar does, not bin/hexmesh.js: that
 * entry rebuilds the bundle when a file under src/ is newer, so an edit during a run made the
 * next pair build it at start-up and keep esbuild in memory (+12.7 MiB RSS, +12.4 USS per
 * proxy, unnoticed in the figures). The bundle is built here once per run when it is stale.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../lib/free-port.ts';
import { waitFor200 } from '../lib/http-probe.ts';
import { GcTrace } from '../lib/gc-trace.ts';
import type { PathStarter } from './path.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
let bundled: Promise<string> | undefined;

/** This tree's dist/hexmesh.mjs, built first if older than src/ (once per process). */
function bundle(): Promise<string> {
  bundled ??= (async () => {
    const { BUNDLE, buildBundle, bundleIsFresh } = (await import(join(ROOT, 'scripts', 'bundle.mjs'))) as {
      BUNDLE: string;
      buildBundle(): Promise<void>;
      bundleIsFresh(): boolean;
    };
    if (!bundleIsFresh()) await buildBundle();
    return BUNDLE;
  })();
  return bundled;
}

export const startHexmesh: PathStarter = async (ctx) => {
  const [clientOut, clientIn, clientAdmin, serverOut, serverIn, serverAdmin] = await Promise.all(
    Array.from({ length: 6 }, () => freePort()),
  );
  const h2 = ctx.protocol !== 'http1';
  // --tls: mutual TLS between the sidecars (STRICT inbound), the server's SPIFFE ID checked.
  const certs = ctx.certs;
  // The mesh's protocol names: h2c from the app is plain 'http2'.
  const protocol = ctx.protocol === 'http1' ? 'http' : ctx.protocol === 'h2c' ? 'http2' : 'grpc';
  const loop = (port: number): { address: string; port: number } => ({ address: '127.0.0.1', port });
  const serverCfg = {
    proxy: {
      service: 'upstream',
      outbound: loop(serverOut),
      inbound: loop(serverIn),
      admin: loop(serverAdmin),
      app: { host: '127.0.0.1', port: h2 ? ctx.upstreamH2Port : ctx.upstreamPort, protocol },
      ...(certs
        ? {
            tls: {
              certFile: certs.serverCert,
              keyFile: certs.serverKey,
              bundleFile: certs.caCert,
              mode: 'STRICT',
            },
          }
        : {}),
    },
  };
  const clientCfg = {
    proxy: {
      service: 'bench-client',
      outbound: loop(clientOut),
      inbound: loop(clientIn),
      admin: loop(clientAdmin),
      ...(ctx.hop ? { hopTransport: ctx.hop } : {}),
      ...(certs
        ? { tls: { certFile: certs.clientCert, keyFile: certs.clientKey, bundleFile: certs.caCert } }
        : {}),
    },
    services: [
      {
        name: 'upstream',
        ports: [{ port: 80, protocol }],
        endpoints: [{ address: '127.0.0.1', port: serverIn }],
      },
    ],
  };
  const serverFile = join(ctx.tmpDir, `hexmesh-server-${serverIn}.yaml`);
  const clientFile = join(ctx.tmpDir, `hexmesh-client-${clientOut}.yaml`);
  writeFileSync(serverFile, stringify(serverCfg));
  writeFileSync(clientFile, stringify(clientCfg));
  const env = { ...process.env, NODE_ENV: 'production' };
  // --trace-gc: one stdout line per pause, counted per phase by GcTrace (a few lines per second
  // of load; stdout is then kept out of the failure tail, stderr stays in it).
  const opts = { env, keepStdout: true };
  // HEXMESH_BENCH_NODE_ARGS: more node flags for the proxies, e.g. `--cpu-prof --cpu-prof-dir=DIR`
  // (not allowed in NODE_OPTIONS).
  const extra = process.env.HEXMESH_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const main = await bundle();
  const args = (file: string): string[] => ['--trace-gc', ...extra, main, 'proxy', '--config', file];
  const server = ctx.group.start('hexmesh-server', process.execPath, args(serverFile), opts);
  const client = ctx.group.start('hexmesh-client', process.execPath, args(clientFile), opts);
  const gc = [new GcTrace(client.child.stdout!), new GcTrace(server.child.stdout!)];
  const close = async (): Promise<void> => {
    await Promise.all([ctx.group.stop(client), ctx.group.stop(server)]);
  };
  try {
    const watch = [client, server];
    await Promise.all([
      waitFor200(`http://127.0.0.1:${serverAdmin}/ready`, { timeoutMs: ctx.startTimeoutMs, watch }),
      waitFor200(`http://127.0.0.1:${clientAdmin}/ready`, { timeoutMs: ctx.startTimeoutMs, watch }),
    ]);
    await waitFor200(`http://127.0.0.1:${clientOut}/`, {
      host: 'upstream',
      timeoutMs: ctx.startTimeoutMs,
      watch,
    });
  } catch (err) {
    await close();
    throw err;
  }
  return {
    name: 'hexmesh',
    origin: `http://127.0.0.1:${clientOut}`,
    host: 'upstream',
    proxies: [client, server],
    gc,
    hop:
      (certs ? 'mutual TLS 1.3 (SPIFFE identities, STRICT)' : 'plaintext') +
      (ctx.hop && ctx.protocol === 'http1' ? `, ${ctx.hop === 'http2' ? 'HTTP/2' : 'HTTP/1.1'}` : ''),
    close,
  };
};
