/** Exit codes of every hexmesh command (docs/cli.md lists them). */
export const EXIT = Object.freeze({
  OK: 0,
  /** A runtime failure: a listener could not bind, a peer was unreachable. */
  RUNTIME: 1,
  /** Wrong flags or arguments. */
  USAGE: 2,
  /** Invalid configuration: every problem is printed with its path. */
  CONFIG: 3,
  /** What a control-plane command named does not exist (a resource, service, key, instance). */
  NOT_FOUND: 4,
  /** A control-plane write lost a compare-and-set (stale resourceVersion, `--cas`). */
  CONFLICT: 5,
});
