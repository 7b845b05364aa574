/**
 * What keeps a web page out of the admin listener. Binding loopback is not enough: a page
 * in the user's browser can reach 127.0.0.1 too.
 *
 * - DNS rebinding: the page's own name (`attacker.example`) is re-pointed at 127.0.0.1, so
 *   the browser treats admin answers as same-origin and lets the page read `/config`. The
 *   request still carries `Host: attacker.example`; only Host values that name this
 *   listener by a loopback name or one of its own addresses are accepted (as Envoy's
 *   admin and geth's `--http.vhosts` do).
 * - Cross-site requests: a page may send a "simple" cross-origin POST (text/plain, no
 *   custom header) without a CORS preflight; it cannot read the answer, but the request
 *   runs. Anything that changes state therefore needs `x-hexmesh-admin`, a header a page
 *   can only add after a preflight the admin never approves.
 */
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';

/** The header every state-changing admin request must carry (any non-empty value; `1` by convention). */
export const ADMIN_HEADER = 'x-hexmesh-admin';

/** Methods that only read; every other method changes state and needs ADMIN_HEADER. */
const READ_ONLY = new Set(['GET', 'HEAD']);

export function changesState(method: string): boolean {
  return !READ_ONLY.has(method);
}

/**
 * True when a browser says another site's page sent the request (`Sec-Fetch-Site` other than
 * `same-origin` or `none`, the user's own navigation). No page has business here, reading or
 * not: a frame left loading `/tap` held one of its few viewer slots.
 */
export function fromAnotherSite(value: string | string[] | undefined): boolean {
  return typeof value === 'string' && value !== 'same-origin' && value !== 'none';
}

/** True when the request carries the admin header (a page cannot, cross-origin, without a preflight). */
export function hasAdminHeader(value: string | string[] | undefined): boolean {
  return typeof value === 'string' ? value.trim() !== '' : Array.isArray(value) && value.length > 0;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '';
}

/**
 * The hosts (lower-case, IPv6 without brackets) that may name a listener bound to
 * `address`: loopback names, plus the bound address itself, or, for a wildcard bind, the
 * addresses of this machine's interfaces and its host name (a scraper on another host uses
 * one of them).
 */
function ownAddresses(address: string): Set<string> {
  const own = new Set<string>();
  if (!isWildcard(address)) {
    if (isIP(address)) own.add(address.toLowerCase());
    return own;
  }
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) own.add(a.address.toLowerCase());
  // The machine's own name (what `--advertise <hostname>` registers for scrapes): a page
  // cannot make a browser send it without controlling this machine's name.
  own.add(hostname().toLowerCase());
  return own;
}

/** Split a Host header into host (IPv6 unbracketed, lower-case) and port; undefined if malformed. */
export function splitHost(value: string): { host: string; port: number | undefined } | undefined {
  const v = value.trim().toLowerCase();
  let host: string;
  let rest: string;
  if (v.startsWith('[')) {
    const close = v.indexOf(']');
    if (close < 0) return undefined;
    host = v.slice(1, close);
    rest = v.slice(close + 1);
    if (isIP(host) !== 6) return undefined;
  } else {
    const colon = v.indexOf(':');
    host = colon < 0 ? v : v.slice(0, colon);
    rest = colon < 0 ? '' : v.slice(colon);
  }
  if (host === '') return undefined;
  if (rest === '') return { host, port: undefined };
  if (!/^:\d{1,5}$/.test(rest)) return undefined;
  return { host, port: Number(rest.slice(1)) };
}

/**
 * A checker for the Host header of requests to a listener bound at `address:port`: the
 * host must be loopback or one of the listener's own addresses, and the port, when given,
 * the listener's (absent only means 80, as in HTTP).
 */
export function hostChecker(address: string, port: number): (value: string | undefined) => boolean {
  const own = ownAddresses(address);
  return (value) => {
    if (value === undefined) return false;
    const h = splitHost(value);
    if (!h) return false;
    if ((h.port ?? 80) !== port) return false;
    return isLoopback(h.host) || own.has(h.host);
  };
}
