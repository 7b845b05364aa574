/**
 * Where a caller's own admin listener is: the address its connection comes from, with the
 * port it names. A workload never chooses the host the control plane will fetch from (the
 * viewer-level diagnose, tap and metrics scrapes call that address): naming any URL there
 * made the control plane a proxy into its own network (SSRF).
 */
import type { Socket } from 'node:net';

/** The connection's peer address, IPv4-mapped IPv6 reduced to IPv4 (`::ffff:10.0.0.5` → `10.0.0.5`). */
export function peerHost(socket: Pick<Socket, 'remoteAddress'>): string | undefined {
  const a = socket.remoteAddress;
  if (a === undefined) return undefined;
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** `host:port` for an admin listener (IPv6 in brackets, as a URL authority needs it). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The port of `host:port` (a bracketed IPv6 host included), or undefined when there is none. */
export function portOf(address: string): number | undefined {
  const m = /:(\d{1,5})$/.exec(address);
  const port = m ? Number(m[1]) : NaN;
  return Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined;
}

/**
 * The admin address to record for a caller that says its admin listener is on `port`:
 * the caller's own connection address with that port; undefined without a port or peer.
 */
export function callerAdminAddress(
  socket: Pick<Socket, 'remoteAddress'>,
  port: number | undefined,
): string | undefined {
  const host = peerHost(socket);
  return host === undefined || port === undefined ? undefined : hostPort(host, port);
}
