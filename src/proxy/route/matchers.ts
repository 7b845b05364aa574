/**
 * Compiled request matchers for HTTPRoute/GRPCRoute: path prefix (element-wise), header and
 * query-parameter matches. Everything here is built once at config time; the per-request
 * functions do no regex compilation and allocate only when a query string must be read.
 */
import type { HeaderMap } from '../core/dispatch.ts';

/**
 * Normalise a PathPrefix value for {@link prefixMatches}: trailing slashes are dropped
 * (Gateway API: "a trailing slash in the prefix is ignored"), so `/` becomes the empty string
 * and `/abc/` becomes `/abc`.
 */
export function normalizePrefix(prefix: string): string {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 47 /* / */) end--;
  return prefix.slice(0, end);
}

/**
 * Element-wise prefix match (Gateway API PathPrefix): `/abc` matches `/abc`, `/abc/` and
 * `/abc/x`, never `/abcd`. `prefix` must come from {@link normalizePrefix}; `path` is the
 * path without its query string.
 */
export function prefixMatches(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47;
}

/** Anchor a Gateway API regular expression: matches are full-string, as Envoy's safe_regex. */
export function compileFullMatch(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

/** A compiled value matcher: exact (case-sensitive) or a full-match regular expression. */
export interface ValueMatch {
  readonly exact: string | undefined;
  readonly re: RegExp | undefined;
}

export function compileValueMatch(type: 'Exact' | 'RegularExpression', value: string): ValueMatch {
  return type === 'RegularExpression'
    ? { exact: undefined, re: compileFullMatch(value) }
    : { exact: value, re: undefined };
}

export function valueMatches(m: ValueMatch, v: string): boolean {
  return m.re === undefined ? v === m.exact : m.re.test(v);
}

/** A header match with its name lower-cased (HeaderMap names are lower-case by contract). */
export interface HeaderMatch extends ValueMatch {
  readonly name: string;
}

export function compileHeaderMatch(m: {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}): HeaderMatch {
  return { name: m.name.toLowerCase(), ...compileValueMatch(m.type, m.value) };
}

/**
 * True when every header match holds. A repeated header is compared as its values joined by
 * `, ` (RFC 9110 §5.3, the guidance Gateway API points to); a missing header never matches.
 */
export function headersMatch(matches: readonly HeaderMatch[], headers: HeaderMap): boolean {
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i];
    const raw = headers[m.name];
    if (raw === undefined) return false;
    const v = typeof raw === 'string' ? raw : raw.join(', ');
    if (!valueMatches(m, v)) return false;
  }
  return true;
}

/** A query-parameter match; names are case-sensitive (Gateway API). */
export interface QueryMatch extends ValueMatch {
  readonly name: string;
}

export function compileQueryMatch(m: {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}): QueryMatch {
  return { name: m.name, ...compileValueMatch(m.type, m.value) };
}

export function queryMatches(matches: readonly QueryMatch[], query: ReadonlyMap<string, string>): boolean {
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i];
    const v = query.get(m.name);
    if (v === undefined || !valueMatches(m, v)) return false;
  }
  return true;
}

function decodeComponent(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s; // malformed escape: compare the raw text rather than fail the request
  }
}

/**
 * Parse the query of `path` (everything after the first `?`) into name → first value, keeping
 * only the names in `wanted` (Gateway API: "only the first entry with an exact name match MUST
 * be considered"). Names and values are percent-decoded, `+` as space (form encoding).
 */
export function parseQuery(path: string, wanted: ReadonlySet<string>): Map<string, string> {
  const out = new Map<string, string>();
  const q = path.indexOf('?');
  if (q < 0) return out;
  let start = q + 1;
  const end = path.length;
  while (start <= end) {
    let amp = path.indexOf('&', start);
    if (amp < 0) amp = end;
    if (amp > start) {
      const eq = path.indexOf('=', start);
      const hasEq = eq >= 0 && eq < amp;
      const name = decodeComponent(path.slice(start, hasEq ? eq : amp));
      if (wanted.has(name) && !out.has(name))
        out.set(name, hasEq ? decodeComponent(path.slice(eq + 1, amp)) : '');
    }
    start = amp + 1;
  }
  return out;
}

/** The path without its query string (no copy when there is none). */
export function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}
