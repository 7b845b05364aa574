/**
 * Requests from other web pages (cross-site request forgery). A page the user opens may make
 * the browser send "simple" requests to the control plane without asking first: a `fetch`
 * in no-cors mode or a form POST (text/plain is parsed as YAML by `/v1/apply`), and a
 * WebSocket handshake, which CORS does not cover at all. With auth off they need no
 * credential, so they would run. The browser says where a request comes from, and scripts
 * cannot forge it, so, as Go's net/http CrossOriginProtection:
 *
 * - `Sec-Fetch-Site` (sent by every current browser): only `same-origin` (the dashboard's
 *   own calls) and `none` (typed by the user) pass;
 * - without it, an `Origin` header must name the host the request was sent to;
 * - neither: not a browser (the CLI, curl, proxies), it passes.
 *
 * Requests that only read (GET, HEAD, OPTIONS) are not checked: a page cannot read their
 * answers without CORS, which the API never grants. Upgrades are checked whatever their method.
 */
import type { IncomingMessage } from 'node:http';
import { HexmeshError } from '../../errors/hexmesh-error.ts';

const READ_ONLY = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True when `req` may change state: a method other than GET, HEAD and OPTIONS. */
export function changesState(method: string): boolean {
  return !READ_ONLY.has(method);
}

function sameOrigin(req: IncomingMessage): { ok: boolean; from: string } {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  if (typeof site === 'string')
    return {
      ok: site === 'same-origin' || site === 'none',
      from: `${origin ?? 'a page'} (Sec-Fetch-Site: ${site})`,
    };
  if (origin === undefined) return { ok: true, from: '' };
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    // `null` (a sandboxed frame, a file) or garbage: not this origin.
  }
  return { ok: host !== undefined && host === req.headers.host?.toLowerCase(), from: origin };
}

/**
 * The 403 for a request a page on another origin made the browser send, or undefined when it
 * may go on. `what` names the request (`POST /v1/apply`, `upgrade /v1/discovery`).
 */
export function crossOriginRefusal(req: IncomingMessage, what: string): HexmeshError | undefined {
  const { ok, from } = sameOrigin(req);
  if (ok) return undefined;
  return new HexmeshError(
    'HEXMESH_ERR_DENIED',
    `cross-origin request refused: ${what} was sent by a page at ${from}; the API takes ` +
      'state changes from its own dashboard and from clients that are not browsers (docs/api-security.md)',
  );
}
