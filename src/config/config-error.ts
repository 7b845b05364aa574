/**
 * The error every configuration check throws, and the helpers that shape it: kept apart from
 * the schemas (load.ts, zod and yaml) so that a process that only reports or receives such an
 * error, the sidecar above all, does not load them.
 */
import { HexmeshError } from '../errors/hexmesh-error.ts';

export interface ConfigProblem {
  /** Dotted path into the document, e.g. `resources[2].spec.rules[0].timeouts.request`. */
  path: string;
  value: unknown;
  message: string;
}

export class ConfigError extends HexmeshError {
  readonly problems: readonly ConfigProblem[];
  readonly source: string;
  constructor(source: string, problems: ConfigProblem[]) {
    super(
      'HEXMESH_ERR_CONFIG_INVALID',
      `${source}: invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems
          .map(
            (p) =>
              `  - ${p.path || '(root)'}: ${p.message}${p.value === undefined ? '' : ` (got ${show(p.value)})`}`,
          )
          .join('\n'),
    );
    this.source = source;
    this.problems = problems;
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out;
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
