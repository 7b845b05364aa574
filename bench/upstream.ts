/**
 * The benchmark's upstream app, run as its own process so that its CPU is not mixed with
 * the load generator's or the proxies'. node:http rather than nginx: nginx is not
 * installed on these machines, and the app is the same for every path, so it cancels out.
 *
 *   GET /        200, 1 KiB body (the standard benchmark response)
 *   GET /big     200, 100 MiB streamed in 64 KiB chunks with back-pressure (override
 *                the size with ?mib=N)
 *
 * Prints `{"port":N}` on stdout once listening.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

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
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
