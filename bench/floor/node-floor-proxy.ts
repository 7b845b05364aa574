/**
 * The floor a Node sidecar is measured against (issue 11): the smallest proxy that does the
 * hexmesh pair's transport work and nothing else. node:http's server on the listening side,
 * hexmesh's own HTTP/1.1 hop (src/proxy/transport/h1-transport.ts) to the next hop, mutual
 * TLS between the two like the hexmesh pair; no routing, layers, metrics or header rules.
 * The gap between it and the hexmesh pair in the same bench run is what hexmesh's layers and
 * listener cost; the gap between it and HAProxy is Node's.
 *
 *   node --import tsx bench/floor/node-floor-proxy.ts --listen PORT --next PORT
 *     [--tls-in cert,key,ca]    serve mutual TLS (the server side)
 *     [--tls-out cert,key,ca]   connect with mutual TLS (the client side), SNI "upstream"
 *     [--lean]                  listen with Node's llhttp binding on the socket handle instead
 *                               of node:http's server (bodiless requests only: a floor, not a proxy)
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { createRequire } from 'node:module';
import { H1Transport } from '../../src/proxy/transport/h1-transport.ts';
import { PLAINTEXT, type HopSecurity } from '../../src/proxy/transport/hop-security.ts';
import { newContext } from '../../src/proxy/listen/request-context.ts';
import { NEVER } from '../../src/proxy/core/cancel.ts';
import type { HeaderMap, MeshRequest } from '../../src/proxy/core/dispatch.ts';
import { floorArgs } from './floor-args.ts';

const args = floorArgs();
const out = args.tlsOut;
const security: HopSecurity = out
  ? {
      scheme: 'https',
      connectOptions: () => ({ ...out, servername: 'upstream', minVersion: 'TLSv1.3' }),
    }
  : PLAINTEXT;
const hop = new H1Transport('127.0.0.1', args.next, {
  connectTimeout: 5000,
  maxConnections: 1024,
  idleTimeout: 60_000,
  bodyTimeout: 60_000,
  security,
});
const id = { direction: 'outbound' as const, service: 'floor' };

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const headers = { ...req.headers } as HeaderMap;
  delete headers.host;
  delete headers.connection;
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  const mreq: MeshRequest = {
    method: req.method ?? 'GET',
    authority: req.headers.host ?? '',
    path: req.url ?? '/',
    headers,
    body: hasBody ? req : null,
    protocol: 'http1',
    grpc: false,
    ctx: newContext(id, '', NEVER, req.socket),
  };
  hop.request(mreq, undefined).then(
    (r) => {
      const h = { ...r.headers };
      delete h.connection;
      delete h['keep-alive'];
      delete h['transfer-encoding'];
      res.writeHead(r.status, h as http.OutgoingHttpHeaders);
      if (r.body === null) res.end();
      else r.body.pipe(res);
    },
    () => {
      res.statusCode = 502;
      res.end();
    },
  );
}

const inTls = args.tlsIn;
if (args.lean) leanServer();
else {
  const server = inTls
    ? https.createServer(
        { ...inTls, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
        handle,
      )
    : http.createServer(handle);
  server.keepAliveTimeout = 60_000;
  server.listen(args.listen, '127.0.0.1', () => process.stdout.write('listening\n'));
}
process.on('SIGTERM', () => process.exit(0));

interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  consume(handle: object): void;
  [k: number]: unknown;
}
const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: { new (): Parser; REQUEST: number; kOnHeadersComplete: number; kOnExecute: number };
  methods: string[];
};

function leanServer(): void {
  const onSocket = (socket: net.Socket): void => {
    socket.setNoDelay(true);
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
    parser[HTTPParser.kOnHeadersComplete] = (
      _maj: number,
      _min: number,
      raw: string[],
      method: number,
      url: string,
    ): void => {
      const headers: HeaderMap = {};
      let authority = '';
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i].toLowerCase();
        if (name === 'host') authority = raw[i + 1];
        else if (name !== 'connection') headers[name] = raw[i + 1];
      }
      const mreq: MeshRequest = {
        method: methods[method],
        authority,
        path: url,
        headers,
        body: null,
        protocol: 'http1',
        grpc: false,
        ctx: newContext(id, '', NEVER, socket),
      };
      hop.request(mreq, undefined).then(
        (r) => {
          let head = `HTTP/1.1 ${r.status} ${http.STATUS_CODES[r.status]}\r\n`;
          for (const k in r.headers) {
            if (k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding') continue;
            head += `${k}: ${String(r.headers[k])}\r\n`;
          }
          const body = r.body;
          if (body === null) return void socket.write(`${head}\r\n`);
          if (r.headers['content-length'] === undefined) head += 'transfer-encoding: chunked\r\n';
          const chunked = r.headers['content-length'] === undefined;
          const parts: Buffer[] = [];
          body.on('data', (c: Buffer) => parts.push(c));
          body.on('end', () => {
            const all = Buffer.concat(parts);
            if (chunked)
              socket.write(
                `${head}\r\n${all.length.toString(16)}\r\n${all.toString('latin1')}\r\n0\r\n\r\n`,
                'latin1',
              );
            else socket.write(`${head}\r\n${all.toString('latin1')}`, 'latin1');
          });
        },
        () => socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n'),
      );
    };
    parser[HTTPParser.kOnExecute] = (ret: unknown): void => {
      if (typeof ret !== 'number') socket.destroy();
    };
    socket.on('error', () => {});
    parser.consume((socket as unknown as { _handle: object })._handle);
  };
  const server = inTls
    ? tls.createServer(
        { ...inTls, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
        onSocket,
      )
    : net.createServer(onSocket);
  server.listen(args.listen, '127.0.0.1', () => process.stdout.write('listening\n'));
}
