/**
 * Readiness probes: poll an HTTP URL until it answers 200, failing early (with the
 * process's own output) when the process being waited for has exited.
 */
import { request } from 'node:http';
import { connect } from 'node:http2';
import type { Managed } from './process-group.ts';

/** One GET with a fresh connection; resolves with the status code. */
export function getStatus(url: string, host?: string, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'GET', agent: false, headers: host ? { host } : {}, timeout: timeoutMs },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

/** One HTTP/2 cleartext (prior knowledge) GET on a fresh session; resolves with the status code. */
export function getStatusH2(url: string, host?: string, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const session = connect(u.origin);
    const timer = setTimeout(() => session.destroy(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
    session.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const req = session.request({ ':path': u.pathname, ':authority': host ?? u.host });
    let status = 0;
    req.once('response', (h) => (status = Number(h[':status'])));
    req.on('data', () => {});
    req.once('error', () => {});
    req.once('close', () => {
      clearTimeout(timer);
      session.close();
      if (status) resolve(status);
      else reject(new Error('HTTP/2 stream closed without a response'));
    });
    req.end();
  });
}

/** Wait until `url` answers 200, or throw after `timeoutMs` naming the last outcome. */
export async function waitFor200(
  url: string,
  opts: { host?: string; timeoutMs: number; watch?: readonly Managed[]; h2?: boolean },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    for (const p of opts.watch ?? []) {
      if (p.hasExited()) {
        throw new Error(`${p.name} exited (${await p.exited}) before ${url} was ready:\n${indent(p.tail())}`);
      }
    }
    try {
      const status = await (opts.h2 ? getStatusH2 : getStatus)(url, opts.host);
      if (status === 200) return;
      last = `HTTP ${status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const tails = (opts.watch ?? []).map((p) => `${p.name}:\n${indent(p.tail())}`).join('\n');
  throw new Error(`${url} not ready after ${opts.timeoutMs} ms (last: ${last})${tails ? `\n${tails}` : ''}`);
}

function indent(s: string): string {
  const t = s.trim();
  // Stack frames say little about why a proxy would not start: keep the messages.
  const lines = t.split('\n').filter((l) => !/^\s+at /.test(l));
  return t
    ? lines
        .slice(-15)
        .map((l) => `    ${l}`)
        .join('\n')
    : '    (no output)';
}
