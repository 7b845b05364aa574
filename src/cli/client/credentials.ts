/**
 * The CLI's credentials file, like a kubeconfig: `{ contexts: [{name, control, token}], current }`,
 * mode 0600. `hexmesh control` writes `<data-dir>/credentials.json` with an admin token on
 * first start. Lookup: `--credentials FILE`, env `HEXMESH_CREDENTIALS`, `~/.hexmesh/credentials`,
 * `./.hexmesh/credentials.json` (the default data dir); `HEXMESH_TOKEN` overrides the token.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, open, rename } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export interface CredentialsContext {
  name: string;
  /** Control plane URL. */
  control: string;
  token: string;
}

export interface CredentialsFile {
  contexts: CredentialsContext[];
  current?: string;
}

/** Where the CLI looks when neither `--credentials` nor `HEXMESH_CREDENTIALS` is set. */
export function defaultCredentialPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME || homedir();
  return [join(home, '.hexmesh', 'credentials'), resolve('.hexmesh', 'credentials.json')];
}

export function readCredentials(path: string): CredentialsFile {
  let doc: Partial<CredentialsFile>;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as Partial<CredentialsFile>;
  } catch (e) {
    // The message names the file, never its content (it holds tokens): no cause, since a JSON
    // parse error quotes the text it choked on.
    // eslint-disable-next-line preserve-caught-error
    throw new Error(
      `cannot read credentials file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'invalid JSON'}`,
    );
  }
  const contexts = Array.isArray(doc.contexts)
    ? doc.contexts.filter(
        (c): c is CredentialsContext =>
          typeof c?.name === 'string' && typeof c.control === 'string' && typeof c.token === 'string',
      )
    : [];
  return { contexts, ...(typeof doc.current === 'string' && { current: doc.current }) };
}

/**
 * The user's own credentials file, the one `hexmesh up` adds its context to and `hexmesh
 * context` edits: `HEXMESH_CREDENTIALS`, else `~/.hexmesh/credentials` (as kubectl's
 * `KUBECONFIG`, else `~/.kube/config`).
 */
export function userCredentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.HEXMESH_CREDENTIALS || join(env.HOME || homedir(), '.hexmesh', 'credentials');
}

/** Add or replace context `ctx` (made current) in `path`, written atomically with mode 0600. */
export async function writeCredentials(path: string, ctx: CredentialsContext): Promise<void> {
  const prev = existsSync(path) ? readCredentials(path) : { contexts: [] };
  await saveCredentials(path, {
    contexts: [...prev.contexts.filter((c) => c.name !== ctx.name), ctx],
    current: ctx.name,
  });
}

/** Write the whole file atomically (temp file, fsync, rename) with mode 0600. */
export async function saveCredentials(path: string, next: CredentialsFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(next, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

const norm = (u: string) => u.replace(/\/+$/, '');

/**
 * The URL and token to use. The token comes from `HEXMESH_TOKEN`, else from the context of
 * the file whose `control` is the URL asked for (`--control`/`HEXMESH_CONTROL`), else — when
 * no URL was asked for — from the current context, whose URL is then used. A token is never
 * sent to a URL its context does not name.
 */
export function resolveCredentials(
  opts: { control?: string; credentials?: string },
  env: NodeJS.ProcessEnv = process.env,
): { control: string | undefined; token: string | undefined } {
  const asked = opts.control || env.HEXMESH_CONTROL || undefined;
  const explicit = opts.credentials || env.HEXMESH_CREDENTIALS || undefined;
  // With no file named, every default file that exists is a candidate in order: a URL asked
  // for is looked up in each (~/.hexmesh/credentials holds the contexts `hexmesh up` added,
  // ./.hexmesh/credentials.json the bootstrap one of a control plane started here).
  const files = explicit
    ? [readCredentials(explicit)]
    : defaultCredentialPaths(env)
        .filter((p) => existsSync(p))
        .map((p) => readCredentials(p));
  let control = asked;
  let token: string | undefined;
  for (const file of files) {
    const ctx = asked
      ? file.contexts.find((c) => norm(c.control) === norm(asked))
      : (file.contexts.find((c) => c.name === file.current) ?? file.contexts[0]);
    if (ctx) {
      token = ctx.token;
      control ??= ctx.control;
      break;
    }
  }
  if (env.HEXMESH_TOKEN) token = env.HEXMESH_TOKEN;
  return { control, token };
}
