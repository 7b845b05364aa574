/**
 * The request listener of the control-plane API: route, bound the body, time the
 * handler out, answer JSON (with `X-Hexmesh-Index`) or hand the response to a stream,
 * and turn every error into its response through error-response.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { readBody } from './body.ts';
import { MAX_WAIT_MS } from './blocking.ts';
import { crossOriginRefusal, foreignHostRefusal, needsSameOrigin } from './cross-origin.ts';
import { badRequest, errorResponse } from './error-response.ts';
import type { ApiRequest, ApiResult, Router } from './router.ts';
import type { ApiAuth } from '../auth/api-auth.ts';
import type { LiveCredentials } from '../auth/live-credentials.ts';

export interface ApiServerOptions {
  /** Largest accepted request body (413 beyond). */
  bodyLimit: number;
  /** How long a non-blocking request may take (504 beyond); blocking reads get their wait on top. */
  requestTimeoutMs: number;
  /** Aborted (with every request's signal) when the server shuts down. */
  shutdown: AbortSignal;
  /** Unexpected (500) errors, for the operator's log. */
  onInternalError?(err: unknown, req: IncomingMessage): void;
  /** Authentication and route permissions (docs/api-security.md); absent: every call is let through. */
  auth?: ApiAuth;
  /**
   * Ends a blocking query or stream when the credential it was opened with is revoked or
   * expires: its signal is aborted with the 401 error (a stream says why and ends; a blocking
   * query answers 401, not the data).
   */
  credentials?: LiveCredentials;
  /**
   * Listening on loopback: the DNS names besides `localhost` a Host may carry (any IP address
   * may); others are refused (DNS rebinding, cross-origin.ts). Absent: any Host.
   */
  loopbackHosts?: ReadonlySet<string>;
}

export function apiRequestListener(router: Router, opts: ApiServerOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void handle(router, opts, req, res);
  };
}

async function handle(router: Router, opts: ApiServerOptions, req: IncomingMessage, res: ServerResponse) {
  const controller = new AbortController();
  const abort = () => controller.abort();
  opts.shutdown.addEventListener('abort', abort, { once: true });
  res.once('close', () => {
    opts.shutdown.removeEventListener('abort', abort);
    abort();
  });
  let timer: NodeJS.Timeout | undefined;
  let revoked = () => false;
  try {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    // A trailing slash is kept: it matters to KV prefixes (`app/` is not `app`).
    const parts = path.split('/').slice(1);
    let decoded: string[];
    try {
      decoded = parts.map(decodeURIComponent);
    } catch {
      throw badRequest(`malformed percent-encoding in path ${JSON.stringify(path)}`);
    }
    const method = req.method ?? 'GET';
    // Before anything runs: a page on another origin may not change state or use the API, nor
    // a page that rebound its name to this loopback listener do anything (cross-origin.ts).
    const refused =
      (opts.loopbackHosts ? foreignHostRefusal(req, `${method} ${path}`, opts.loopbackHosts) : undefined) ??
      (needsSameOrigin(method, path) ? crossOriginRefusal(req, `${method} ${path}`) : undefined);
    if (refused) throw refused;
    const m = router.match(method, decoded);
    if (m.kind === 'not-found')
      throw new HexmeshError('HEXMESH_ERR_NOT_FOUND', `no API endpoint ${method} ${path}`);
    if (m.kind === 'method-not-allowed') {
      res.setHeader('allow', m.allowed.join(', '));
      throw new HexmeshError(
        'HEXMESH_ERR_METHOD_NOT_ALLOWED',
        `${method} is not allowed on ${path} (allowed: ${m.allowed.join(', ')})`,
      );
    }
    // Before the body is read: an unauthorised caller costs no more than its headers.
    const principal = await opts.auth?.check(req, m.permission, `${method} ${path}`, query, m.params);
    let release: (() => void) | undefined;
    // Revoked or expired while the handler waited: refuse, rather than answer with the data.
    revoked = () => controller.signal.reason instanceof HexmeshError;
    const hold = () => {
      release ??= opts.credentials?.hold(principal, (err) => controller.abort(err));
    };
    res.once('close', () => release?.());
    if (query.has('index')) hold();
    let body: Promise<Buffer> | undefined;
    const apiReq: ApiRequest = {
      principal,
      method,
      path,
      params: m.params,
      query,
      headers: req.headers,
      raw: req,
      signal: controller.signal,
      body: () => (body ??= readBody(req, opts.bodyLimit)),
    };
    const limit = opts.requestTimeoutMs + (query.has('index') ? Math.ceil((MAX_WAIT_MS * 17) / 16) : 0);
    const result = await Promise.race([
      m.handler(apiReq),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new HexmeshError(
                'HEXMESH_ERR_TIMEOUT',
                `${method} ${path} did not complete within ${limit} ms`,
              ),
            ),
          limit,
        );
      }),
    ]);
    clearTimeout(timer);
    if (revoked()) throw controller.signal.reason;
    // A stream is handed its response even so: it may hold a slot to release.
    if (res.destroyed && !('stream' in result)) return;
    send(req, res, result);
    // One still open (a watch, a tap; not a file or a redirect) lives on its credential.
    if ('stream' in result && !res.writableEnded && !res.destroyed) hold();
  } catch (thrown) {
    // A wait cut by revocation ends the handler with whatever it met (a 404): answer the 401.
    const err: unknown = revoked() ? controller.signal.reason : thrown;
    clearTimeout(timer);
    abort();
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const { status, body } = errorResponse(err);
    if (status >= 500 && status !== 503 && status !== 504) opts.onInternalError?.(err, req);
    const text = `${JSON.stringify(body)}\n`;
    const headers: Record<string, string | number> = {
      ...API_HEADERS,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    };
    const index = body.error.index;
    if (typeof index === 'number') headers['x-hexmesh-index'] = String(index);
    if (status === 413) {
      // The rest of an oversize body is not read: close the connection after answering.
      headers.connection = 'close';
      req.resume();
    }
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : text);
  }
}

/**
 * Every JSON answer: never stored by a browser or a shared cache (KV values, token lists and
 * tapped headers would sit on disk after sign-out), never sniffed as anything but JSON.
 */
const API_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

function send(req: IncomingMessage, res: ServerResponse, result: ApiResult): void {
  if ('stream' in result) {
    result.stream(res);
    return;
  }
  const text = `${JSON.stringify(result.json)}\n`;
  const headers: Record<string, string | number> = {
    ...API_HEADERS,
    ...result.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  };
  if (result.index !== undefined) headers['x-hexmesh-index'] = String(result.index);
  res.writeHead(result.status ?? 200, headers);
  res.end(req.method === 'HEAD' ? undefined : text);
}
