/**
 * Where a consistent-hash key comes from (`loadBalancer.hashOn`): a request header, a cookie
 * by name, or the source IP. The extractor is built once per config; extracting does no
 * regex and allocates only the returned substring.
 */
import { header, type HeaderMap } from '../core/dispatch.ts';
import type { LoadBalancerSpec } from './balancer.ts';

export type HashOn = NonNullable<LoadBalancerSpec['hashOn']>;

/** Returns the key, or undefined when the request has none (the balancer then picks at random). */
export type HashKeyExtractor = (headers: HeaderMap, srcAddress: string) => string | undefined;

const none: HashKeyExtractor = () => undefined;

/** Build the extractor for `hashOn`; without `hashOn` every request has no key. */
export function hashKeyExtractor(hashOn: HashOn | undefined): HashKeyExtractor {
  if (hashOn?.header !== undefined) {
    // Header maps hold lower-case names; config may spell them any way.
    const name = hashOn.header.toLowerCase();
    return (headers) => header(headers, name);
  }
  if (hashOn?.cookie !== undefined) {
    const name = hashOn.cookie;
    return (headers) => cookieFromHeaders(headers, name);
  }
  if (hashOn?.sourceIp) return (_headers, src) => sourceIp(src);
  return none;
}

/** A cookie's value from the `cookie` header(s); HTTP/2 may split cookies over several headers. */
export function cookieFromHeaders(headers: HeaderMap, name: string): string | undefined {
  const v = headers['cookie'];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return cookieValue(v, name);
  for (const line of v) {
    const found = cookieValue(line, name);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The value of cookie `name` in one `Cookie` header (`a=1; b=2`), first occurrence wins,
 * surrounding whitespace and one pair of double quotes removed (RFC 6265 cookie-value).
 */
export function cookieValue(line: string, name: string): string | undefined {
  const len = line.length;
  let pos = 0;
  while (pos < len) {
    while (pos < len && (line.charCodeAt(pos) === 32 || line.charCodeAt(pos) === 9)) pos++;
    let semi = line.indexOf(';', pos);
    if (semi === -1) semi = len;
    const eq = line.indexOf('=', pos);
    if (eq !== -1 && eq < semi && isName(line, pos, eq, name)) {
      let a = eq + 1;
      let b = semi;
      while (a < b && (line.charCodeAt(a) === 32 || line.charCodeAt(a) === 9)) a++;
      while (b > a && (line.charCodeAt(b - 1) === 32 || line.charCodeAt(b - 1) === 9)) b--;
      if (b - a >= 2 && line.charCodeAt(a) === 34 && line.charCodeAt(b - 1) === 34) {
        a++;
        b--;
      }
      return line.slice(a, b);
    }
    pos = semi + 1;
  }
  return undefined;
}

/** line[start, end) equals `name`, ignoring whitespace before the `=`. */
function isName(line: string, start: number, end: number, name: string): boolean {
  while (end > start && (line.charCodeAt(end - 1) === 32 || line.charCodeAt(end - 1) === 9)) end--;
  return end - start === name.length && line.startsWith(name, start);
}

/** The peer IP as a key: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) folded to IPv4 so both stacks agree. */
export function sourceIp(src: string): string | undefined {
  if (src === '') return undefined;
  return src.startsWith('::ffff:') && src.indexOf('.') !== -1 ? src.slice(7) : src;
}
