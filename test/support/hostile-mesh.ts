/**
 * Test support: a small mesh of real `hexmesh proxy` processes for hostile-peer tests (crash
 * reproductions, the HTTP/2 frame fuzz test, the abuse benchmark). A crash shows as an exited
 * process, never as a failure hidden inside the test runner.
 *
 *   client (outbound) ──▶ server (inbound, PERMISSIVE mTLS) ──▶ HTTP/1 app
 *                     └─▶ grpc (inbound, plaintext)          ──▶ h2c gRPC-style app
 *
 * `targets` are the listeners a raw client can attack: the client's outbound listener (for
 * both destinations), the server's inbound listener in plaintext and over mTLS (a peer
 * certificate from the mesh CA), and the gRPC sidecar's inbound listener.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { CliProxy } from './cli.ts';
import { PemDir, TestCa } from './pki.ts';

export interface Target {
  name: string;
  port: () => number;
  /** `:authority` a request must carry to reach an app through this listener. */
  authority: string;
  grpc: boolean;
  /** TLS options (mTLS inbound), else plaintext. */
  tls?: tls.ConnectionOptions;
}

export interface AppSeen {
  h1: number;
  grpc: number;
  /** Header values with CR, LF or NUL that reached an app (must stay empty). */
  badBytes: string[];
  /** Header names with a space, colon or upper-case letter that reached an app. */
  badNames: string[];
  /** Paths of requests whose body an app read to the end (a complete request). */
  completed: string[];
  /** Names of request trailer fields that reached an app. */
  trailers: string[];
}

export interface HostileMesh {
  client: CliProxy;
  server: CliProxy;
  grpc: CliProxy;
  targets: Target[];
  seen: AppSeen;
  /** Every proxy process is still running (with its stderr in the message if not). */
  assertAlive(): void;
  /** One legitimate HTTP/2 request through `t` succeeds. */
  assertServes(t: Target): Promise<void>;
  close(): Promise<void>;
}

const ANY = { address: '127.0.0.1', port: 0 };

export async function startHostileMesh(extra: Record<string, unknown> = {}): Promise<HostileMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-hostile-'));
  const pem = new PemDir();
  const seen: AppSeen = { h1: 0, grpc: 0, badBytes: [], badNames: [], completed: [], trailers: [] };
  const note = (raw: string[]) => {
    for (let i = 0; i < raw.length; i += 2) {
      if (/[\s:A-Z]/.test(raw[i]) && !raw[i].startsWith(':')) seen.badNames.push(raw[i]);
      if (/[\r\n\0]/.test(raw[i + 1])) seen.badBytes.push(raw[i + 1]);
    }
  };

  const h1App = http.createServer((req, res) => {
    seen.h1++;
    note(req.rawHeaders);
    req.resume();
    req.on('error', () => {});
    // Two Content-Type fields: fine in HTTP/1, a single-value header Node's HTTP/2 refuses.
    if (req.url === '/dup-content-type') res.setHeader('content-type', ['text/plain', 'text/html']);
    const answer = () => res.end(`ok ${req.url}`);
    // /slow: answer after the client has had time to give up.
    req.on('end', () => {
      seen.completed.push(req.url ?? '');
      seen.trailers.push(...Object.keys(req.trailers));
      if (req.url === '/slow') setTimeout(answer, 300);
      else answer();
    });
  });
  const grpcApp = http2.createServer();
  grpcApp.on(
    'stream',
    (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
      seen.grpc++;
      note(raw);
      stream.on('error', () => {});
      stream.on('trailers', (t: http2.IncomingHttpHeaders) => seen.trailers.push(...Object.keys(t)));
      stream.resume();
      stream.on('end', () => {
        // Node's HTTP/2 also ends a stream's readable side when the peer resets it.
        if (!stream.aborted && !stream.rstCode) seen.completed.push(String(headers[':path']));
        if (stream.destroyed) return;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end();
      });
    },
  );
  await Promise.all(
    [h1App, grpcApp].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))),
  );
  const portOf = (s: http.Server | http2.Http2Server) => (s.address() as AddressInfo).port;

  const ca = await TestCa.create('hexmesh.test', 'hostile');
  const serverId = pem.identityFiles('server', await ca.issue(ca.id('default', 'greeter')), ca.rootPem);
  const peer = await ca.issue(ca.id('default', 'client'));

  const procs: CliProxy[] = [];
  const start = async (name: string, doc: Record<string, unknown>): Promise<CliProxy> => {
    const file = join(dir, `${name}.json`);
    const proxy = doc.proxy as Record<string, unknown>;
    const full = {
      ...doc,
      proxy: { outbound: ANY, inbound: ANY, admin: ANY, drainTimeout: '2s', ...extra, ...proxy },
    };
    writeFileSync(file, JSON.stringify(full));
    const p = await CliProxy.start(file, 30_000);
    procs.push(p);
    return p;
  };
  let server: CliProxy;
  let grpc: CliProxy;
  let client: CliProxy;
  try {
    [server, grpc] = await Promise.all([
      start('server', {
        proxy: { service: 'greeter', app: { port: portOf(h1App) }, tls: { ...serverId, mode: 'PERMISSIVE' } },
      }),
      start('grpc', { proxy: { service: 'grpcsvc', app: { port: portOf(grpcApp), protocol: 'grpc' } } }),
    ]);
    client = await start('client', {
      proxy: { service: 'client' },
      services: [
        { name: 'greeter', endpoints: [{ address: '127.0.0.1', port: server.inboundPort }] },
        {
          name: 'grpcsvc',
          ports: [{ port: 80, protocol: 'grpc' }],
          endpoints: [{ address: '127.0.0.1', port: grpc.inboundPort }],
        },
      ],
    });
  } catch (err) {
    for (const p of procs) await p.kill();
    throw err;
  }

  const peerTls: tls.ConnectionOptions = {
    cert: peer.certChainPem,
    key: peer.keyPem,
    ca: ca.rootPem,
    ALPNProtocols: ['h2'],
    // The sidecar's certificate names a SPIFFE ID, not a host.
    checkServerIdentity: () => undefined,
  };
  const targets: Target[] = [
    { name: 'outbound→http', port: () => client.outboundPort, authority: 'greeter', grpc: false },
    { name: 'outbound→grpc', port: () => client.outboundPort, authority: 'grpcsvc', grpc: true },
    { name: 'inbound', port: () => server.inboundPort, authority: 'greeter', grpc: false },
    { name: 'inbound mTLS', port: () => server.inboundPort, authority: 'greeter', grpc: false, tls: peerTls },
    { name: 'inbound→grpc', port: () => grpc.inboundPort, authority: 'grpcsvc', grpc: true },
  ];

  const assertAlive = () => {
    for (const [name, p] of [
      ['client', client],
      ['server', server],
      ['grpc', grpc],
    ] as const)
      assert.ok(
        p.child.exitCode === null && p.child.signalCode === null,
        `the ${name} proxy process died (exit ${p.child.exitCode ?? p.child.signalCode})\nstderr: ${p.stderr}`,
      );
  };

  return {
    client,
    server,
    grpc,
    targets,
    seen,
    assertAlive,
    async assertServes(t: Target): Promise<void> {
      assertAlive();
      const res = await h2Request(t, '/legit');
      assert.equal(res.status, 200, `${t.name}: ${res.body}`);
      if (t.grpc) assert.equal(res.trailers['grpc-status'], '0', `${t.name}: ${JSON.stringify(res)}`);
      else assert.equal(res.body, 'ok /legit');
    },
    async close(): Promise<void> {
      await Promise.all(procs.map((p) => p.kill()));
      h1App.closeAllConnections();
      await Promise.all([new Promise((r) => h1App.close(r)), new Promise((r) => grpcApp.close(r))]);
      pem.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface H2Result {
  status: number;
  body: string;
  trailers: Record<string, string | string[] | undefined>;
}

/**
 * The header section of a request to `t` for raw HPACK frames: the pseudo-headers (`:scheme`
 * as the target's TLS), gRPC's content-type and `te` for a gRPC target, then `extra`.
 */
export function requestFields(
  t: Target,
  extra: [string, string][] = [],
  path = '/',
  method = 'POST',
): [string, string][] {
  return [
    [':method', method],
    [':scheme', t.tls ? 'https' : 'http'],
    [':authority', t.authority],
    [':path', path],
    ...(t.grpc
      ? ([
          ['content-type', 'application/grpc'],
          ['te', 'trailers'],
        ] as [string, string][])
      : []),
    ...extra,
  ];
}

/** A node:http2 connection to a target (TLS as the target's); its errors surface on streams. */
export function h2Connect(t: Target): http2.ClientHttp2Session {
  const session = t.tls
    ? http2.connect(`https://127.0.0.1:${t.port()}`, t.tls)
    : http2.connect(`http://127.0.0.1:${t.port()}`);
  session.on('error', () => {});
  return session;
}

/** One HTTP/2 request to a target on a fresh connection (node:http2, a well-behaved client). */
export async function h2Request(t: Target, path: string, timeoutMs = 15_000): Promise<H2Result> {
  const session = h2Connect(t);
  try {
    return await new Promise<H2Result>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${t.name}: no answer in ${timeoutMs} ms`)), timeoutMs);
      const headers: http2.OutgoingHttpHeaders = { ':path': path, ':authority': t.authority };
      if (t.grpc)
        Object.assign(headers, { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' });
      const s = session.request(headers, { endStream: !t.grpc });
      if (t.grpc) s.end(Buffer.from([0, 0, 0, 0, 0]));
      const out: H2Result = { status: 0, body: '', trailers: {} };
      s.on('response', (h) => (out.status = Number(h[':status'])));
      s.on('trailers', (tr) => (out.trailers = tr));
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out.body += d));
      s.on('end', () => {
        clearTimeout(timer);
        resolve(out);
      });
      s.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } finally {
    session.destroy();
  }
}
