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
 * Reads of the API (`/v1/…`) are checked too: a page cannot read their answers without CORS,
 * which the API never grants, but a frame left loading `/v1/tap` or a blocking query holds a
 * slot (a tap viewer on every proxy of the service). Upgrades are checked whatever their
 * method. Only page loads of the dashboard (`/`, `/ui/…`: a link from another site) pass.
 *
 * DNS rebinding defeats both: the page re-points its own name at 127.0.0.1, and to the
 * browser its calls are then same-origin. They still carry that name in `Host`, so a control
 * plane listening on loopback answers only to `localhost`, IP addresses and the names it is
 * told of (as the proxy's admin listener does, src/proxy/admin/admin-guard.ts, and Vite's
 * `allowedHosts`; any port: ssh and kubectl forwards).
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { HexmeshError } from '../../errors/hexmesh-error.ts';

const READ_ONLY = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True when the request must come from the API's own origin or no browser: a state change or an API path. */
export function needsSameOrigin(method: string, path: string): boolean {
  return !READ_ONLY.has(method) || path.startsWith('/v1/');
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
      'requests from its own dashboard and from clients that are not browsers (docs/api-security.md)',
  );
}

/** True for a listen address only this host can reach. */
export function isLoopbackAddress(address: string): boolean {
  return address === 'localhost' || address === '::1' || (isIP(address) === 4 && address.startsWith('127.'));
}

/** The host part of a Host header: `localhost`, an IPv4 address or a bracketed IPv6 one, lower-case. */
function hostName(value: string): string {
  const v = value.trim().toLowerCase();
  if (v.startsWith('[')) return v.slice(0, v.indexOf(']') + 1);
  const colon = v.indexOf(':');
  return colon < 0 ? v : v.slice(0, colon);
}

/**
 * The 403 for a request to a loopback listener whose `Host` is a DNS name other than
 * `localhost` and the `allowed` names (lower-case), what a DNS-rebinding page sends; or
 * undefined. No Host (HTTP/1.0) passes: a browser always sends one.
 */
export function foreignHostRefusal(
  req: IncomingMessage,
  what: string,
  allowed: ReadonlySet<string>,
): HexmeshError | undefined {
  const value = req.headers.host;
  if (value === undefined) return undefined;
  const host = hostName(value);
  const ip = host.startsWith('[') ? host.slice(1, -1) : host;
  if (host === 'localhost' || isIP(ip) !== 0 || allowed.has(host)) return undefined;
  return new HexmeshError(
    'HEXMESH_ERR_DENIED',
    `Host ${JSON.stringify(value)} does not name this control plane: listening on loopback, it answers ` +
      'to localhost, IP addresses and --allowed-hosts names only (DNS-rebinding protection, ' +
      `docs/api-security.md); refused ${what}`,
  );
}
