/** Exit codes of every hexmesh command (docs/cli.md lists them). */
export const EXIT = Object.freeze({
  OK: 0,
  /** A runtime failure: a listener could not bind, a peer was unreachable. */
  RUNTIME: 1,
  /** Wrong flags or arguments. */
  USAGE: 2,
  /** Invalid configuration: every problem is printed with its path. */
  CONFIG: 3,
});
