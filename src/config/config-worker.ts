/**
 * A proxy config file read and validated in a short-lived worker thread, so the sidecar holds
 * the result and nothing of what produced it (docs/proxy.md, "Memory").
 *
 * The file is checked in full, by the one schema (proxy-config.ts, zod) and YAML parser (yaml)
 * that `hexmesh validate` and the control plane use, with the same errors. Done in the proxy's
 * own thread, those modules, their code and the schema objects stay for the life of the process
 * (an ES module is never unloaded): ~16 MiB of private memory per sidecar. A worker has its own
 * isolate, freed with everything in it when the worker ends; only the validated config crosses
 * back (structured clone) and is frozen here.
 *
 * Commands load this module with a dynamic import: the bundle then gives it a chunk of its own,
 * which is also the file the worker runs (`import.meta.url`), so the worker executes this
 * module's code and its imports and nothing else.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ConfigError, deepFreeze, type ConfigProblem } from './config-error.ts';
import type { ProxyConfig } from './proxy-config.ts';

const ROLE = 'hexmesh-config-worker';

type Reply = { config: ProxyConfig } | { source: string; problems: ConfigProblem[] } | { error: string };

if (!isMainThread && (workerData as { role?: unknown } | null)?.role === ROLE)
  void answer((workerData as { file: string }).file);

/** In the worker: load and validate `file`, post the config or the problems. */
async function answer(file: string): Promise<void> {
  let reply: Reply;
  try {
    const { loadProxyConfig } = await import('./load.ts');
    reply = { config: await loadProxyConfig(file) };
  } catch (err) {
    reply =
      err instanceof ConfigError
        ? { source: err.source, problems: [...err.problems] }
        : { error: (err as Error)?.stack ?? String(err) };
  }
  try {
    parentPort!.postMessage(reply);
  } catch (err) {
    // A value that cannot be cloned (none of the schema's outputs, but a problem's `got` value
    // comes from the file): the parent validates in its own thread instead.
    parentPort!.postMessage({ error: `config worker: ${(err as Error).message}`, retry: true });
  }
}

/**
 * Read `file` (YAML or JSON) and validate it as a ProxyConfig, in a worker thread; the same
 * result, or the same ConfigError, as `loadProxyConfig` from load.ts. Runs in this thread
 * instead (zod and yaml then stay loaded) when no worker can run this module: the sources run
 * through a TypeScript loader, or the worker fails to start.
 */
export async function loadProxyConfigInWorker(file: string): Promise<ProxyConfig> {
  const inThread = async (): Promise<ProxyConfig> => (await import('./load.ts')).loadProxyConfig(file);
  if (!import.meta.url.endsWith('.mjs') && !import.meta.url.endsWith('.js')) return inThread();
  const reply = await new Promise<Reply & { retry?: boolean }>((resolve) => {
    const failed = (err: unknown) =>
      resolve({ error: `the config worker failed (${(err as Error)?.message ?? String(err)})`, retry: true });
    try {
      const worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE, file } });
      worker.once('message', (m: Reply) => resolve(m));
      worker.once('error', failed);
      worker.once('exit', (code) => failed(new Error(`exit ${code} before an answer`)));
    } catch (err) {
      failed(err);
    }
  });
  if ('retry' in reply && reply.retry) {
    // Still validated, only with more memory kept: say so rather than fail the start.
    process.stderr.write(`hexmesh: ${(reply as { error: string }).error}; validating in the main thread\n`);
    return inThread();
  }
  if ('config' in reply) return deepFreeze(reply.config);
  if ('problems' in reply) throw new ConfigError(reply.source, reply.problems);
  throw new Error(reply.error);
}
