/**
 * The large-body check: download a 100 MiB streamed response through a path while
 * sampling every proxy's RSS, to show that memory does not grow with body size.
 */
import { request } from 'node:http';
import { rssKiB } from './proc-stats.ts';
import type { Managed } from './process-group.ts';

export interface StreamResult {
  mib: number;
  seconds: number;
  mibPerS: number;
  /** Per proxy (client side first): RSS just before, and the highest seen during, in KiB. */
  rssBeforeKiB: number[];
  rssPeakKiB: number[];
}

export async function streamBody(
  origin: string,
  host: string,
  mib: number,
  proxies: readonly Managed[],
  timeoutMs: number,
): Promise<StreamResult> {
  const rssBeforeKiB = proxies.map((p) => rssKiB(p.pid));
  const rssPeakKiB = [...rssBeforeKiB];
  const sample = (): void => {
    proxies.forEach((p, i) => {
      try {
        rssPeakKiB[i] = Math.max(rssPeakKiB[i], rssKiB(p.pid));
      } catch {}
    });
  };
  const sampler = setInterval(sample, 50);
  const t0 = performance.now();
  try {
    const bytes = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${origin}/big?mib=${mib}`,
        { agent: false, headers: { host }, timeout: timeoutMs },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`HTTP ${res.statusCode} for the streamed body`));
            return;
          }
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.once('end', () => resolve(n));
          res.once('error', reject);
        },
      );
      const deadline = setTimeout(
        () => req.destroy(new Error(`streamed body not done after ${timeoutMs} ms`)),
        timeoutMs,
      );
      req.once('close', () => clearTimeout(deadline));
      req.once('timeout', () => req.destroy(new Error(`streamed body stalled for ${timeoutMs} ms`)));
      req.once('error', reject);
      req.end();
    });
    sample();
    const seconds = (performance.now() - t0) / 1000;
    if (bytes !== mib * 1024 * 1024)
      throw new Error(`streamed body: got ${bytes} bytes, expected ${mib * 1024 * 1024}`);
    return { mib, seconds, mibPerS: mib / seconds, rssBeforeKiB, rssPeakKiB };
  } finally {
    clearInterval(sampler);
  }
}
