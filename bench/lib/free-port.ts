import { createServer } from 'node:net';

/**
 * A port that was free a moment ago: bind port 0 on loopback, read it, close. Another
 * process could take it before we use it; on a bench machine that is rare enough.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
