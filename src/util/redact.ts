/**
 * Secrets out of a config before it is shown: what the proxy's admin `/config` serves and
 * what `/v1/proxies/{target}/diagnose` relays of it (as Envoy's config dump redacts its
 * secrets). Shared so that both hide the same things.
 */

/** Field names whose values are never shown (tokens, keys, credentials). */
const SECRET_KEY =
  /(secret|password|passwd|token|private|credential|authorization|cookie|apikey|api_key|^key$|pem$)/i;

/** A deep copy with secret-looking values replaced by `<redacted>`. */
export function redact(v: unknown, depth = 0): unknown {
  if (depth > 64) return '<too deep>';
  if (Array.isArray(v)) return v.map((x) => redact(x, depth + 1));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>))
      out[k] =
        SECRET_KEY.test(k) && x !== null && typeof x !== 'boolean' && typeof x !== 'number'
          ? '<redacted>'
          : redact(x, depth + 1);
    // Header pairs ({name: 'Authorization', value: 'Bearer …'} in header modifiers and
    // matches): the secret is named by the pair's name, not by a field name.
    const { name, value } = v as { name?: unknown; value?: unknown };
    if (typeof name === 'string' && value !== undefined && SECRET_KEY.test(name.replace(/-/g, '_')))
      out.value = '<redacted>';
    return out;
  }
  if (typeof v === 'string' && v.includes('-----BEGIN')) return '<redacted>';
  return v;
}
