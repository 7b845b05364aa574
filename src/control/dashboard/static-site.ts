/**
 * Serving a built single-page app from a folder: content types, caching and the SPA
 * fallback.
 *
 * - Files under `assets/` carry a content hash in their name: `cache-control: public,
 *   max-age=31536000, immutable`. Everything else (index.html) is `no-cache`: revalidated
 *   on every load with its ETag, so a rebuild shows at the next reload.
 * - A precompressed `<file>.gz` beside a file is sent to clients that accept gzip.
 * - A path with no file and no extension is a page of the app: index.html answers it (the
 *   app routes on the client). A missing path with an extension (a stale asset) is a 404.
 * - Paths are resolved inside the folder only; `..` segments and NUL bytes are refused.
 */
import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, sep } from 'node:path';
import { contentType } from './content-types.ts';

export interface StaticSiteOptions {
  /** The folder served. */
  dir: string;
  /** The file answering app paths (default `index.html`). */
  index?: string;
  /** Path prefix of hashed, immutable files inside `dir` (default `assets/`). */
  immutablePrefix?: string;
  /** Why there is no index.html, for the 503 answer (e.g. the last build's error). */
  notBuiltReason?: () => string | undefined;
}

/** Headers every answer carries. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
/** The page runs only its own bundled code and talks only to the control plane that served it. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async function fileStat(path: string): Promise<Stats | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s : undefined;
  } catch {
    return undefined;
  }
}

function acceptsGzip(req: IncomingMessage): boolean {
  const ae = req.headers['accept-encoding'];
  return typeof ae === 'string' && ae.includes('gzip');
}

export class StaticSite {
  readonly dir: string;
  readonly #index: string;
  readonly #immutable: string;
  readonly #notBuiltReason: () => string | undefined;

  constructor(opts: StaticSiteOptions) {
    this.dir = opts.dir;
    this.#index = opts.index ?? 'index.html';
    this.#immutable = opts.immutablePrefix ?? 'assets/';
    this.#notBuiltReason = opts.notBuiltReason ?? (() => undefined);
  }

  /**
   * Answer `rel` (the path below the site's mount point, already percent-decoded, no leading
   * slash). Resolves once the answer is handed to the response.
   */
  async serve(req: IncomingMessage, res: ServerResponse, rel: string): Promise<void> {
    const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.some((p) => p === '..' || p.includes('\0') || p.includes('\\'))) {
      this.#plain(req, res, 400, 'bad path\n');
      return;
    }
    let name = parts.join('/');
    let path = join(this.dir, ...parts);
    let st = name === '' ? undefined : await fileStat(path);
    if (!st) {
      const last = parts[parts.length - 1] ?? '';
      if (name !== '' && last.includes('.')) {
        this.#plain(req, res, 404, `not found: ${rel}\n`);
        return;
      }
      name = this.#index;
      path = join(this.dir, this.#index);
      st = await fileStat(path);
      if (!st) {
        const why = this.#notBuiltReason();
        this.#plain(
          req,
          res,
          503,
          `the dashboard is not built (${path} is missing)${why ? `: ${why}` : ''}\n` +
            'build it with `npm run build:dashboard` (docs/dashboard.md)\n',
        );
        return;
      }
    }
    if (!path.startsWith(this.dir.endsWith(sep) ? this.dir : this.dir + sep)) {
      this.#plain(req, res, 400, 'bad path\n');
      return;
    }
    const headers: Record<string, string | number> = {
      ...SECURITY_HEADERS,
      'content-type': contentType(name),
      'cache-control': name.startsWith(this.#immutable) ? 'public, max-age=31536000, immutable' : 'no-cache',
      vary: 'accept-encoding',
    };
    if (name === this.#index) headers['content-security-policy'] = CSP;
    let send = path;
    let size = st.size;
    let etag = `W/"${st.size.toString(36)}-${Math.floor(st.mtimeMs).toString(36)}"`;
    if (acceptsGzip(req)) {
      const gz = await fileStat(`${path}.gz`);
      if (gz) {
        send = `${path}.gz`;
        size = gz.size;
        etag = `W/"${gz.size.toString(36)}-${Math.floor(gz.mtimeMs).toString(36)}-gz"`;
        headers['content-encoding'] = 'gzip';
      }
    }
    headers.etag = etag;
    if (req.headers['if-none-match'] === etag) {
      delete headers['content-encoding'];
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers['content-length'] = size;
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(send);
    stream.on('error', () => res.destroy());
    res.once('close', () => stream.destroy());
    stream.pipe(res);
  }

  #plain(req: IncomingMessage, res: ServerResponse, status: number, text: string): void {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(text),
    });
    res.end(req.method === 'HEAD' ? undefined : text);
  }
}
