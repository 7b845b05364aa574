/** Header handling shared by the listeners and transports. */
import type { HeaderMap } from './dispatch.ts';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) plus ones the transports set themselves. `Trailer` is
 * end to end (RFC 9110 §6.6.2): it announces the trailers the proxy relays, so it is kept.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'http2-settings',
]);

/**
 * Copy end-to-end headers from a Node header object, dropping hop-by-hop ones, any header
 * named in `Connection`, and HTTP/2 pseudo-headers. `te: trailers` is kept (gRPC needs it).
 */
export function endToEndHeaders(src: Record<string, string | string[] | undefined>): HeaderMap {
  const out: HeaderMap = {};
  const conn = src['connection'];
  const extra = conn
    ? String(conn)
        .toLowerCase()
        .split(/\s*,\s*/)
    : undefined;
  for (const name in src) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name)) {
      if (name === 'te' && String(src[name]).toLowerCase() === 'trailers') out.te = 'trailers';
      continue;
    }
    if (extra && extra.includes(name)) continue;
    out[name] = src[name];
  }
  return out;
}

/** Response headers that must not be forwarded to an HTTP/2 peer. */
export function h2SafeHeaders(h: HeaderMap): HeaderMap {
  const out: HeaderMap = {};
  for (const name in h) {
    if (HOP_BY_HOP.has(name) || name.charCodeAt(0) === 58) continue;
    out[name] = h[name];
  }
  return out;
}
