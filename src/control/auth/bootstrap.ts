/**
 * First-start credentials: `hexmesh control` (auth enforced) makes sure the local user can
 * reach its API by writing an admin token into `<data-dir>/credentials.json` (0600), in the
 * CLI's credentials-file shape. An existing file whose token still verifies is kept (only
 * its URL is refreshed, the port may change); otherwise a new admin token is created. The
 * token text goes to the file only, never to stdout or logs.
 */
import { existsSync } from 'node:fs';
import { readCredentials, writeCredentials } from '../../cli/client/credentials.ts';
import type { ApiTokens } from './api-tokens.ts';

export const BOOTSTRAP_CONTEXT = 'local';

/** Returns true when a new token was written. */
export async function ensureBootstrapCredentials(
  tokens: ApiTokens,
  file: string,
  url: string,
): Promise<boolean> {
  if (existsSync(file)) {
    const ctx = readCredentials(file).contexts.find((c) => c.name === BOOTSTRAP_CONTEXT);
    if (ctx) {
      const ok = await tokens.verify(ctx.token).then(
        (t) => t.role === 'admin',
        () => false,
      );
      if (ok) {
        if (ctx.control !== url) await writeCredentials(file, { ...ctx, control: url });
        return false;
      }
    }
  }
  const { token } = await tokens.create({ name: 'bootstrap-admin', role: 'admin' });
  await writeCredentials(file, { name: BOOTSTRAP_CONTEXT, control: url, token });
  return true;
}
