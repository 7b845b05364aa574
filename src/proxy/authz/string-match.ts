/**
 * Istio's string match for policy values: `exact`, `prefix*`, `*suffix`, or `*`
 * (any non-empty value). Compiled once per policy; matching allocates nothing.
 */

/** A compiled pattern. */
export type StringMatcher = (value: string) => boolean;

/** Compile one pattern (the schema already refused `*` in the middle). */
export function compilePattern(pattern: string, ignoreCase = false): StringMatcher {
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const fold = ignoreCase ? (v: string) => v.toLowerCase() : (v: string) => v;
  if (p === '*') return (v) => v.length > 0;
  if (p.endsWith('*')) {
    const prefix = p.slice(0, -1);
    return (v) => fold(v).startsWith(prefix);
  }
  if (p.startsWith('*')) {
    const suffix = p.slice(1);
    return (v) => fold(v).endsWith(suffix);
  }
  return (v) => fold(v) === p;
}

/** Any of several patterns; `undefined` when the list is absent (the field is then not checked). */
export function compileAny(
  patterns: readonly string[] | undefined,
  ignoreCase = false,
): StringMatcher | undefined {
  if (patterns === undefined) return undefined;
  const ms = patterns.map((p) => compilePattern(p, ignoreCase));
  if (ms.length === 1) return ms[0];
  return (v) => {
    for (const m of ms) if (m(v)) return true;
    return false;
  };
}
