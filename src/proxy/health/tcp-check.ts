/** TCP health check: passes when a connection to the port is accepted. */
import net from 'node:net';
import { type CheckResult, describeSocketError, hostPort } from './check-result.ts';

/** One TCP check. Settles (never rejects) on connect, error, or when `signal` aborts. */
export function tcpCheck(address: string, port: number, signal: AbortSignal): Promise<CheckResult> {
  const where = hostPort(address, port);
  return new Promise<CheckResult>((resolve) => {
    if (signal.aborted) return resolve({ status: 'critical', detail: 'check cancelled' });
    const socket = net.connect({ host: address, port });
    const onAbort = () => {
      socket.destroy();
      resolve({ status: 'critical', detail: 'check cancelled' });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ status: 'passing', detail: `connected to ${where}` });
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      resolve({ status: 'critical', detail: describeSocketError(err, where) });
    });
  });
}
