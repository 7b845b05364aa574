/**
 * A proxy config file read and validated in a short-lived child process, so the sidecar holds
 * the result and nothing of what produced it (docs/proxy.md, "Memory: what the sidecar loads").
 *
 * The file is checked in full, by the one schema (proxy-config.ts, zod) and YAML parser (yaml)
 * that `hexmesh validate` and the control plane use, with the same errors. Done in the proxy's
 * own thread, those modules, their code and the schema objects stay for the life of the process
 * (an ES module is never unloaded): ~16 MiB of private memory per sidecar. A worker thread
 * frees its isolate when it ends but leaves ~3 MiB private (7 MiB RSS) behind in the process;
 * a child process leaves nothing. Only the validated config crosses back (IPC with structured
 * clone, as a worker's message) and is frozen here.
 *
 * Commands load this module with a dynamic import: the bundle then gives it a chunk of its own,
 * which is also the file the child runs (`import.meta.url`), so the child executes this module's
 * code and its imports and nothing else.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError, deepFreeze, type ConfigProblem } from './config-error.ts';
import type { ProxyConfig } from './proxy-config.ts';

/** Set in the child's environment: the file to check. */
const FILE_ENV = 'HEXMESH_CONFIG_CHECK_FILE';

type Reply = { config: ProxyConfig } | { source: string; problems: ConfigProblem[] } | { error: string };

const self = fileURLToPath(import.meta.url);
if (process.send && process.argv[1] === self && process.env[FILE_ENV] !== undefined)
  void answer(process.env[FILE_ENV]);

/** In the child: load and validate `file`, send the config or the problems, end. */
async function answer(file: string): Promise<void> {
  let reply: Reply & { retry?: boolean };
  try {
    const { loadProxyConfig } = await import('./load.ts');
    reply = { config: await loadProxyConfig(file) };
  } catch (err) {
    reply =
      err instanceof ConfigError
        ? { source: err.source, problems: [...err.problems] }
        : { error: (err as Error)?.stack ?? String(err) };
  }
  const done = (): void => process.disconnect();
  try {
    process.send!(reply, undefined, {}, done);
  } catch (err) {
    // A value that cannot be cloned (none of the schema's outputs, but a problem's `got` value
    // comes from the file): the parent validates in its own thread instead.
    process.send!(
      { error: `the config check could not answer (${(err as Error).message})`, retry: true },
      done,
    );
  }
}

/**
 * Read `file` (YAML or JSON) and validate it as a ProxyConfig, in a child process; the same
 * result, or the same ConfigError, as `loadProxyConfig` from load.ts. Runs in this thread
 * instead (zod and yaml then stay loaded) when no child can run this module: the sources run
 * through a TypeScript loader, or the child fails to start or answer (said on stderr).
 */
export async function loadProxyConfigInWorker(file: string): Promise<ProxyConfig> {
  const inThread = async (): Promise<ProxyConfig> => (await import('./load.ts')).loadProxyConfig(file);
  if (!self.endsWith('.mjs') && !self.endsWith('.js')) return inThread();
  const reply = await new Promise<Reply & { retry?: boolean }>((resolve) => {
    const failed = (why: string) => resolve({ error: `the config check process ${why}`, retry: true });
    try {
      // No execArgv: the proxy's node flags (--trace-gc, --cpu-prof, a --import) are not the check's.
      const child = fork(self, [], {
        execArgv: [],
        serialization: 'advanced',
        env: { ...process.env, [FILE_ENV]: file },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      child.once('message', (m: Reply) => resolve(m));
      child.once('error', (err) => failed(`failed (${err.message})`));
      // 'close' comes after every message sent before the channel closed.
      child.once('close', (code, signal) => failed(`ended (${signal ?? `exit ${code}`}) before an answer`));
    } catch (err) {
      failed(`could not start (${(err as Error).message})`);
    }
  });
  if ('retry' in reply && reply.retry) {
    // Still validated, only with more memory kept: say so rather than fail the start.
    process.stderr.write(
      `hexmesh: ${(reply as { error: string }).error}; validating in the proxy's process\n`,
    );
    return inThread();
  }
  if ('config' in reply) return deepFreeze(reply.config);
  if ('problems' in reply) throw new ConfigError(reply.source, reply.problems);
  throw new Error(reply.error);
}
