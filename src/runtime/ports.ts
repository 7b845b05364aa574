/** Free loopback ports, picked by the kernel (listen on port 0, read it, close). */
import net from 'node:net';

/** A port free at the time of the call (another process could still take it before use). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
