/**
 * Check a document against a schema, once, at the edge: every problem with its path, value and
 * reason, the result frozen. Apart from load.ts so that a process validating documents that do
 * not come from text (the control plane's updates in a sidecar) does not load the YAML parser.
 */
import type { z } from 'zod';
import { ConfigError, deepFreeze, formatPath } from './config-error.ts';

function valueAt(doc: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k as string];
  }
  return cur;
}

/** Validate `doc` against `schema`; throws ConfigError listing every problem. Returns a deep-frozen value. */
export function validate<S extends z.ZodType>(schema: S, doc: unknown, source: string): z.infer<S> {
  const r = schema.safeParse(doc);
  if (!r.success) {
    throw new ConfigError(
      source,
      r.error.issues.map((i) => {
        const extra = i.code === 'unrecognized_keys' ? (i as { keys?: string[] }).keys : undefined;
        return {
          path: formatPath(i.path),
          value: extra ? undefined : valueAt(doc, i.path),
          message: extra
            ? `unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => `"${k}"`).join(', ')}`
            : i.message,
        };
      }),
    );
  }
  return deepFreeze(r.data);
}
