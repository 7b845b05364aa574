/**
 * Free loopback ports for processes that are told their port before they bind it (app
 * instances, etcd, a test's control plane).
 *
 * A port found with listen(0) lies in the kernel's ephemeral range, where every outgoing
 * connection on the machine also takes its local port: between our check and the child's
 * bind, one may take it (seen as EADDRINUSE under a busy test run). So the port is drawn at
 * random below that range and checked by binding it; port 0 is the fallback.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

const LOWEST = 10_000;

/** The first port of the kernel's ephemeral range (Linux default 32768). */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const ceiling = ephemeralStart();

function tryListen(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(undefined));
    s.listen(port, host, () => {
      const { port: bound } = s.address() as net.AddressInfo;
      s.close(() => resolve(bound));
    });
  });
}

/** A port free at the time of the call, outside the ephemeral range where it can be. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryListen(LOWEST + Math.floor(Math.random() * (ceiling - LOWEST)), host);
    if (port !== undefined) return port;
  }
  const port = await tryListen(0, host);
  if (port === undefined) throw new Error(`no free port on ${host}`);
  return port;
}
