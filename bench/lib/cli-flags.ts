/** What the bench runners share in reading their command line (node:util parseArgs values). */

/** Print the usage and exit 0 when `--help` was given. */
export function exitOnHelp(help: boolean | undefined, usage: string): void {
  if (help) {
    console.log(usage);
    process.exit(0);
  }
}

/** A numeric flag: `dflt` when absent, else a finite number ≥ `min`; throws naming the flag. */
export function numberFlag(name: string, v: string | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min)
    throw new Error(`--${name} must be a number ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}

/** An integer flag: `dflt` when absent, else an integer ≥ `min`; throws naming the flag. */
export function intFlag(name: string, v: string | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}
