/** Header handling shared by the listeners and transports. */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
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

/**
 * Headers Node keeps once (the first line wins) rather than joining: their repeated lines are
 * left to Node's reading. `cookie` is joined with `; ` (RFC 9113 §8.2.3) and stays so.
 */
const SINGLE_VALUED = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
  'cookie',
]);

/**
 * Headers with repeated field lines kept as they came: Node joins them into one `a, b` value
 * (`req.headers`, and an HTTP/2 stream's headers object), which is not what the peer sent
 * (Gateway API's header `add` reaches the app as a second line). `raw` is the flat name/value
 * list as received (`req.rawHeaders`, or the HTTP/2 'stream' event's raw headers). Each
 * repeated header becomes a list, sent on as repeated lines; `set-cookie` is a list already and
 * is never joined. Headers without repeated lines (the common case) are returned as they are.
 */
export function keepRepeatedLines(headers: IncomingHttpHeaders, raw: readonly string[]): IncomingHttpHeaders {
  let names = 0;
  for (const _ in headers) names++;
  if (names * 2 === raw.length) return headers;
  const lines = new Map<string, string[]>();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const list = lines.get(name);
    if (list) list.push(raw[i + 1]);
    else lines.set(name, [raw[i + 1]]);
  }
  const out: IncomingHttpHeaders = { ...headers };
  for (const [name, list] of lines)
    if (list.length > 1 && !SINGLE_VALUED.has(name) && name.charCodeAt(0) !== 58 /* ':' */) out[name] = list;
  return out;
}

/** `Connection` values that name no other header (the common case: nothing to split). */
const PLAIN_CONNECTION = new Set(['keep-alive', 'close']);

/** What one pass over a request's field lines gives the HTTP/1 listener. */
export interface RequestFields {
  /**
   * End-to-end headers as node:http's `req.headers` passed through {@link keepRepeatedLines}
   * and {@link endToEndHeaders}: lower-case names; the first line wins for the single-valued
   * ones, `cookie` lines joined with `; `, `set-cookie` and every other repeated header a list
   * of its lines; hop-by-hop headers and those `Connection` names left out (`te: trailers` kept).
   */
  headers: HeaderMap;
  /** The first `Host` value, and how many `Host` lines came. */
  host: string | undefined;
  hosts: number;
  /** The `Expect` value (several lines joined with `, `). */
  expect: string | undefined;
  /** The first `Upgrade` value. */
  upgrade: string | undefined;
  /** A `Transfer-Encoding` line came. */
  chunked: boolean;
  /** The first `Content-Length` value. */
  contentLength: string | undefined;
  /** Names not spelled in lower case, by their lower-case form (see {@link originalNames}). */
  names: Map<string, string> | undefined;
}

/**
 * A request's field lines (`raw`, the flat name/value list the parser gave) read once: each
 * name is lower-cased once and every question the listener asks of the head is answered in
 * the same pass (issue 11: the listener walked the lines five times per request).
 */
export function requestFields(raw: readonly string[]): RequestFields {
  const headers: Record<string, string | string[]> = {};
  let host: string | undefined;
  let hosts = 0;
  let expect: string | undefined;
  let upgrade: string | undefined;
  let chunked = false;
  let contentLength: string | undefined;
  let connection: string | undefined;
  let te: string | undefined;
  let tes = 0;
  let names: Map<string, string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const spelled = raw[i];
    const name = spelled.toLowerCase();
    const value = raw[i + 1];
    if (name !== spelled) (names ??= new Map()).set(name, spelled);
    if (HOP_BY_HOP.has(name)) {
      switch (name) {
        case 'host':
          if (hosts++ === 0) host = value;
          break;
        case 'expect':
          expect = expect === undefined ? value : `${expect}, ${value}`;
          break;
        case 'upgrade':
          upgrade ??= value;
          break;
        case 'transfer-encoding':
          chunked = true;
          break;
        case 'connection':
          connection = connection === undefined ? value : `${connection},${value}`;
          break;
        case 'te':
          if (tes++ === 0) te = value;
          break;
      }
      continue;
    }
    const had = headers[name];
    if (had === undefined) {
      headers[name] = name === 'set-cookie' ? [value] : value;
      if (name === 'content-length') contentLength = value;
    } else if (typeof had !== 'string') had.push(value);
    else if (name === 'cookie') headers[name] = `${had}; ${value}`;
    else if (!SINGLE_VALUED.has(name)) headers[name] = [had, value];
  }
  if (connection !== undefined && !PLAIN_CONNECTION.has(connection.toLowerCase())) {
    for (const listed of connection.toLowerCase().split(/\s*,\s*/))
      if (!HOP_BY_HOP.has(listed)) delete headers[listed];
  }
  if (tes === 1 && te!.toLowerCase() === 'trailers') headers.te = 'trailers';
  return { headers, host, hosts, expect, upgrade, chunked, contentLength, names };
}

/** An HTTP/1 request's headers with repeated field lines kept (see keepRepeatedLines). */
export function fieldLines(req: IncomingMessage): IncomingHttpHeaders {
  return keepRepeatedLines(req.headers, req.rawHeaders);
}

/**
 * Header-name spelling between HTTP/1 peers (Envoy lower-cases every name; apps and clients
 * that compare names case-sensitively break behind it). The listener records the names a
 * request arrived with, the HTTP/1 transport sends them so and records the response's, and
 * the listener writes the response with those. Kept on the request's context
 * (`ctx.requestNames`, `ctx.responseNames`), which every layer and retry shares; an HTTP/2 hop
 * (lower-case by RFC 9113) ends it.
 */

/** Names in `raw` (a flat name/value list) that are not lower-case, by their lower-case form. */
export function originalNames(raw: readonly (string | Buffer)[]): Map<string, string> | undefined {
  let names: Map<string, string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = typeof raw[i] === 'string' ? (raw[i] as string) : raw[i].toString('latin1');
    const lower = name.toLowerCase();
    if (name !== lower) (names ??= new Map()).set(lower, name);
  }
  return names;
}

/** `headers` with each name spelled as in `names` (a copy; `headers` itself when none differ). */
export function withOriginalNames(
  headers: HeaderMap,
  names: ReadonlyMap<string, string> | undefined,
): HeaderMap {
  if (names === undefined) return headers;
  const out: HeaderMap = {};
  for (const k in headers) out[names.get(k) ?? k] = headers[k];
  return out;
}
