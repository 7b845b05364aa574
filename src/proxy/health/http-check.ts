/**
 * HTTP health check: GET `path` on a fresh connection; 2xx passes, 429 warns, anything
 * else is critical (Consul semantics). The body is drained and ignored (at most 4 KiB
 * is kept, for the failure detail).
 */
import http from 'node:http';
import { type CheckResult, describeSocketError, hostPort } from './check-result.ts';

const MAX_BODY_DETAIL = 4096;

/**
 * One HTTP check. Settles (never rejects) once the response ends, the connection fails
 * or `signal` aborts; callers put the timeout on `signal` (see `withTimeout`).
 */
export function httpCheck(
  address: string,
  port: number,
  path: string,
  signal: AbortSignal,
): Promise<CheckResult> {
  const where = hostPort(address, port);
  return new Promise<CheckResult>((resolve) => {
    if (signal.aborted) return resolve({ status: 'critical', detail: 'check cancelled' });
    // agent: false: a new connection per check, so a check also proves the port accepts.
    const req = http.request({
      host: address,
      port,
      path,
      method: 'GET',
      agent: false,
      headers: { host: where, 'user-agent': 'hexmesh-health-check', accept: '*/*', connection: 'close' },
    });
    // Settle on abort whatever phase the exchange is in; later events are no-ops.
    const onAbort = () => {
      req.destroy();
      resolve({ status: 'critical', detail: 'check cancelled' });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('close', () => signal.removeEventListener('abort', onAbort));
    req.on('error', (err) => resolve({ status: 'critical', detail: describeSocketError(err, where) }));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < MAX_BODY_DETAIL) body += chunk;
      });
      res.on('error', (err) => resolve({ status: 'critical', detail: describeSocketError(err, where) }));
      res.on('end', () => {
        const detail = `HTTP ${status} from ${path}`;
        if (status >= 200 && status < 300) resolve({ status: 'passing', detail });
        else if (status === 429) resolve({ status: 'warning', detail });
        else {
          const snippet = body.trim().slice(0, 200);
          resolve({ status: 'critical', detail: snippet ? `${detail}: ${snippet}` : detail });
        }
      });
    });
    req.end();
  });
}
