/**
 * Request-path normalisation before authorization. Path-normalisation differences
 * between the proxy and the app were real bypasses in Envoy/Istio (CVE-2019-9901,
 * CVE-2021-31920): the proxy matched `/public/../admin` as-is while the app served
 * `/admin`. So the path is normalised once, policies match the normalised path, and
 * the app is sent that same normalised path: what was authorized is what the app sees.
 *
 * Steps, on the path part only (the query is forwarded untouched):
 * 1. Percent-decode unreserved characters (ALPHA DIGIT - . _ ~, RFC 3986 §2.3), exactly
 *    once; other escapes stay encoded with upper-case hex, so `%2561dmin` stays
 *    `%2561dmin` (the app decodes it once to `%61dmin`, never to `admin`).
 * 2. Reject (400): encoded `/` (`%2F`) and `\` (`%5C`), raw `\`, NUL raw or encoded,
 *    malformed escapes (`%4`, `%zz`), escapes that are not valid UTF-8 (overlong forms
 *    such as `%C0%AF` for `/`), raw bytes outside printable ASCII, `;` path parameters
 *    (Tomcat/Spring strip them and treat `..;` as `..`, which no matching rule can
 *    follow safely), and `#`.
 * 3. Merge `//`, drop `.` segments and resolve `..` (never above the root); a trailing
 *    slash is kept (`/admin/.` → `/admin/`).
 *
 * The result is idempotent: normalising a normalised path returns it unchanged.
 */

/** How to treat encoded slashes and backslashes (Envoy's `path_with_escaped_slashes_action`). */
export interface NormalizeOptions {
  /**
   * Keep `%2F`, `%5C` and raw `\` instead of rejecting the request (default false).
   * Only safe when the app never decodes `%2F` into a path separator; policies then see
   * `%2F` as part of a segment.
   */
  allowEncodedSlashes?: boolean;
}

export type NormalizeResult =
  | { ok: true; /** Normalised path, no query. */ path: string; /** `?…` or ''. */ query: string }
  | { ok: false; reason: string };

const HEX = '0123456789ABCDEF';

/** Unreserved ASCII bytes (decoded when escaped). */
const UNRESERVED = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1;
}

/** Printable ASCII that may appear raw in a path (RFC 3986 pchar plus a few tolerated by parsers). */
const RAW_OK = new Uint8Array(128);
for (let c = 0x21; c < 0x7f; c++) RAW_OK[c] = 1;
RAW_OK[0x23 /* # */] = 0;
RAW_OK[0x3b /* ; */] = 0;
RAW_OK[0x5c /* \ */] = 0;
RAW_OK[0x25 /* % */] = 0; // handled as an escape

const utf8 = new TextDecoder('utf-8', { fatal: true });

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * True when `p` needs no work: only plain characters, no escapes, no dot segments, no `//`.
 * The common case allocates nothing.
 */
function isPlain(p: string): boolean {
  if (p.charCodeAt(0) !== 47) return false;
  let prev = 47;
  for (let i = 1; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c >= 128 || RAW_OK[c] === 0) return false;
    if (c === 47 && prev === 47) return false;
    if (c === 46 && prev === 47) {
      // A segment starting with '.': plain only if it is not '.' or '..'.
      const n1 = i + 1 < p.length ? p.charCodeAt(i + 1) : 47;
      if (n1 === 47) return false;
      if (n1 === 46) {
        const n2 = i + 2 < p.length ? p.charCodeAt(i + 2) : 47;
        if (n2 === 47) return false;
      }
    }
    prev = c;
  }
  return true;
}

/** Normalise a request target (`/path?query`). */
export function normalizePath(target: string, opts: NormalizeOptions = {}): NormalizeResult {
  const q = target.indexOf('?');
  const raw = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  if (raw.charCodeAt(0) !== 47) return { ok: false, reason: 'path must start with /' };
  if (isPlain(raw)) return { ok: true, path: raw, query };

  const allowSlashes = opts.allowEncodedSlashes === true;
  // Pass 1: decode unreserved escapes, validate everything else, split into segments.
  const segments: string[] = [];
  let seg = '';
  let pending: number[] | null = null; // consecutive escaped non-ASCII bytes, checked as UTF-8
  const flushPending = (): string | null => {
    if (pending === null) return '';
    try {
      utf8.decode(Uint8Array.from(pending));
    } catch {
      return null;
    }
    let out = '';
    for (const b of pending) out += '%' + HEX[b >> 4] + HEX[b & 15];
    pending = null;
    return out;
  };
  for (let i = 1; i <= raw.length; i++) {
    const c = i < raw.length ? raw.charCodeAt(i) : 47;
    if (c === 0x25 /* % */) {
      const ok = i + 2 < raw.length;
      const hi = ok ? hexVal(raw.charCodeAt(i + 1)) : -1;
      const lo = ok ? hexVal(raw.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) return { ok: false, reason: `invalid percent-encoding at offset ${i}` };
      const b = hi * 16 + lo;
      i += 2;
      if (b >= 0x80) {
        (pending ??= []).push(b);
        continue;
      }
      const flushed = flushPending();
      if (flushed === null) return { ok: false, reason: 'percent-encoded bytes are not valid UTF-8' };
      seg += flushed;
      if (b === 0) return { ok: false, reason: 'encoded NUL in path' };
      if (b === 0x2f || b === 0x5c) {
        if (!allowSlashes) return { ok: false, reason: `encoded ${b === 0x2f ? '/' : '\\'} in path` };
        seg += b === 0x2f ? '%2F' : '%5C';
        continue;
      }
      seg += UNRESERVED[b] === 1 ? String.fromCharCode(b) : '%' + HEX[b >> 4] + HEX[b & 15];
      continue;
    }
    const flushed = flushPending();
    if (flushed === null) return { ok: false, reason: 'percent-encoded bytes are not valid UTF-8' };
    seg += flushed;
    if (c === 47) {
      if (seg === '..') segments.pop();
      else if (seg !== '' && seg !== '.') segments.push(seg);
      seg = '';
      continue;
    }
    if (c === 0x5c && allowSlashes) {
      seg += '\\';
      continue;
    }
    if (c >= 128 || RAW_OK[c] === 0) {
      if (c === 0) return { ok: false, reason: 'NUL in path' };
      if (c === 0x5c) return { ok: false, reason: 'backslash in path' };
      if (c === 0x3b) return { ok: false, reason: 'path parameters (;) are not accepted' };
      if (c === 0x23) return { ok: false, reason: 'fragment (#) in path' };
      return { ok: false, reason: `character 0x${c.toString(16)} must be percent-encoded` };
    }
    seg += raw[i];
  }
  // A trailing slash, or a path ending in a dot segment, ends in a directory (RFC 3986 §5.2.4).
  const last = raw.length - 1;
  const endsInDir = raw.charCodeAt(last) === 47 || /(^|\/)(\.|%2[eE]){1,2}$/.test(raw);
  let path = '/' + segments.join('/');
  if (endsInDir && segments.length > 0) path += '/';
  return { ok: true, path, query };
}
