/**
 * The benchmark's upstream app, run as its own process so that its CPU is not mixed with
 * the load generator's or the proxies'. node:http rather than nginx: nginx is not
 * installed on these machines, and the app is the same for every path, so it cancels out.
 *
 *   GET /        200, 1 KiB body (the standard benchmark response)
 *   GET /big     200, 100 MiB streamed in 64 KiB chunks with back-pressure (override
 *                the size with ?mib=N)
 *
 * A second listener speaks HTTP/2 cleartext (prior knowledge): `GET /` answers the same
 * 1 KiB body; a request with `content-type: application/grpc` is answered as a gRPC unary
 * call (one length-prefixed 1 KiB message, then the `grpc-status: 0` trailer).
 *
 * Prints `{"port":N,"h2Port":M}` on stdout once both listen.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createH2Server, type ServerHttp2Stream } from 'node:http2';

const BODY = Buffer.alloc(1024, 'x');
const CHUNK = Buffer.alloc(64 * 1024, 'y');
const HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) };

function streamBig(req: IncomingMessage, res: ServerResponse): void {
  const mib = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('mib') ?? 100);
  let left = Math.max(1, Math.min(mib, 4096)) * 1024 * 1024;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

const GRPC_MESSAGE = Buffer.concat([Buffer.from([0, 0, 0, 4, 0]), BODY]);
const H2_HEADERS = { ':status': 200, 'content-type': 'text/plain', 'content-length': String(BODY.length) };
const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
const GRPC_TRAILERS = { 'grpc-status': '0' };

function grpcUnary(stream: ServerHttp2Stream): void {
  stream.on('data', () => {});
  stream.once('end', () => {
    stream.respond(GRPC_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(GRPC_TRAILERS));
    stream.end(GRPC_MESSAGE);
  });
}

const h2 = createH2Server();
h2.on('stream', (stream, headers) => {
  stream.on('error', () => {});
  if (String(headers['content-type'] ?? '').startsWith('application/grpc')) grpcUnary(stream);
  else {
    stream.respond(H2_HEADERS);
    stream.end(BODY);
  }
});

const server = createServer((req, res) => {
  if (req.url !== undefined && req.url.startsWith('/big')) {
    streamBig(req, res);
    return;
  }
  res.writeHead(200, HEADERS);
  res.end(BODY);
});
// Long keep-alive so neither load generators nor proxies see connections closed mid-run.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
const portOf = (s: { address(): unknown }): number => (s.address() as { port: number }).port;
server.listen(0, '127.0.0.1', () => {
  h2.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: portOf(server), h2Port: portOf(h2) })}\n`);
  });
});
// Nothing here needs a graceful end.
process.on('SIGTERM', () => process.exit(0));
