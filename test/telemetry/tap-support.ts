/** Test support for tap: an NDJSON stream reader over a real HTTP connection. */
import http from 'node:http';

export interface TapStream {
  lines: Record<string, unknown>[];
  /** Everything received, raw (to search for things that must never appear). */
  raw(): string;
  status: number;
  waitFor(pred: (lines: Record<string, unknown>[]) => boolean, ms?: number): Promise<boolean>;
  res: http.IncomingMessage;
  close(): void;
}

/** GET an NDJSON URL; resolves once the response headers (and, for 200, the first line) arrived. */
export function openStream(url: string, opts: { paused?: boolean } = {}): Promise<TapStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let buf = '';
      let all = '';
      const lines: Record<string, unknown>[] = [];
      const s: TapStream = {
        lines,
        raw: () => all,
        status: res.statusCode ?? 0,
        res,
        async waitFor(pred, ms = 5000) {
          const end = Date.now() + ms;
          while (!pred(lines) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
          return pred(lines);
        },
        close: () => req.destroy(),
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        all += chunk;
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) !== -1) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line && res.statusCode === 200) lines.push(JSON.parse(line));
        }
      });
      res.on('error', () => {});
      if (res.statusCode !== 200) {
        res.on('end', () => resolve(s));
        return;
      }
      const ready = () => {
        if (lines.length > 0) {
          res.off('data', ready);
          if (opts.paused) res.pause();
          resolve(s);
        }
      };
      res.on('data', ready);
    });
    req.on('error', reject);
  });
}

export function events(lines: Record<string, unknown>[]): Record<string, unknown>[] {
  return lines.filter((l) => l.type === 'request');
}

export function droppedTotal(lines: Record<string, unknown>[]): number {
  return lines.filter((l) => l.type === 'dropped').reduce((n, l) => n + Number(l.count), 0);
}

/** Plain request through a sidecar's outbound port. */
export function get(
  port: number,
  host: string,
  path: string,
  headers: Record<string, string> = {},
  agent: http.Agent | false = false,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, headers: { host, ...headers }, agent },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
