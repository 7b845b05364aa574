/**
 * The runner's own credential: the bootstrap admin token `hexmesh control` writes to
 * `<data-dir>/credentials.json` (docs/api-security.md). `hexmesh up` started that control
 * plane, so it is the local admin; it reads the token once the control plane is up and uses
 * it for everything it does itself (apply, catalog, KV, rollouts, join tokens).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readCredentials } from '../cli/client/credentials.ts';
import { BOOTSTRAP_CONTEXT } from '../control/auth/bootstrap.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';

/** The credentials file `hexmesh control --data-dir dir` writes. */
export function credentialsFile(dataDir: string): string {
  return join(dataDir, 'credentials.json');
}

const norm = (u: string) => u.replace(/\/+$/, '');

/**
 * Wait (bounded) until `file` holds the bootstrap context for `controlUrl` and return its
 * token. The URL must match: a file left by an earlier run names the earlier port until the
 * control plane has verified its token and refreshed the URL, and a token is never sent to a
 * URL its context does not name.
 */
export async function waitForBootstrapToken(
  file: string,
  controlUrl: string,
  opts: { timeoutMs?: number; pollMs?: number; isAlive?: () => boolean } = {},
): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  let why = 'it does not exist';
  for (;;) {
    if (existsSync(file)) {
      try {
        const ctx = readCredentials(file).contexts.find((c) => c.name === BOOTSTRAP_CONTEXT);
        if (ctx && norm(ctx.control) === norm(controlUrl)) return ctx.token;
        why = ctx
          ? `its "${BOOTSTRAP_CONTEXT}" context names ${ctx.control}, not ${controlUrl}`
          : `it has no "${BOOTSTRAP_CONTEXT}" context`;
      } catch (e) {
        // Half-written files cannot happen (written by rename), but a broken one can.
        why = (e as Error).message;
      }
    }
    if (opts.isAlive && !opts.isAlive())
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        `hexmesh control exited before writing its admin credentials to ${file}`,
      );
    if (Date.now() > deadline)
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        `no admin credentials for ${controlUrl} in ${file} after ${timeoutMs} ms (${why}); ` +
          'hexmesh up needs the control plane to run with API auth enforced (the default)',
      );
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}
