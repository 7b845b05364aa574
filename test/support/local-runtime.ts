/**
 * The local runtime as `hexmesh up` runs it, for tests with real sidecar and app processes:
 * the flaky test app (test/rollout/fixtures/flaky-app.mjs: version and errors from its env)
 * as an instance spec, `hexmesh control` as a real process with an admin client and the
 * runtime joined to it, and a poll that waits for a condition.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { credentialsFile, waitForBootstrapToken } from '../../src/runtime/bootstrap-token.ts';
import { JoinTokenIssuer } from '../../src/runtime/join-token-issuer.ts';
import {
  LocalProcessRuntime,
  type LocalProcessRuntimeOptions,
} from '../../src/runtime/local-process-runtime.ts';
import { freePort } from '../../src/runtime/ports.ts';
import type { InstanceSpec } from '../../src/runtime/runtime.ts';
import { ROOT } from './cli.ts';
import { ControlProcess } from './control-process.ts';

export const FLAKY_APP = join(ROOT, 'test', 'rollout', 'fixtures', 'flaky-app.mjs');

/** The flaky app as instance `id` of `service`, health-checked on /healthz. */
export function flakyAppSpec(
  id: string,
  service: string,
  env: Record<string, string>,
  labels: Record<string, string>,
  extra: Partial<InstanceSpec> = {},
): InstanceSpec {
  return {
    id,
    service,
    namespace: 'default',
    labels,
    command: process.execPath,
    args: [FLAKY_APP],
    env,
    cwd: process.cwd(),
    port: 'auto',
    healthCheck: { type: 'http', path: '/healthz' },
    ...extra,
  };
}

/**
 * Poll `fn` every `everyMs` until it returns a value (not undefined), for at most `ms`.
 * With `retryErrors`, a throw counts as "not yet"; otherwise it fails the wait.
 */
export async function until<T>(
  what: string,
  ms: number,
  fn: () => Promise<T | undefined> | T | undefined,
  { everyMs = 200, retryErrors = false } = {},
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = retryErrors
      ? await Promise.resolve()
          .then(fn)
          .catch(() => undefined)
      : await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ProcessControlMesh {
  /** Temporary directory of this mesh: the control plane's `data`, the runtime's `logs`. */
  dir: string;
  cp: ControlProcess;
  /** The control plane's bootstrap (admin) token. */
  token: string;
  api: ControlClient;
  runtime: LocalProcessRuntime;
  /**
   * Shut everything down: the control plane is started again if it was killed (the runtime
   * deregisters through it), then `before` runs (the test's own parts), then the runtime, the
   * client and the control plane go, and the directory is removed.
   */
  close(before?: () => Promise<unknown>): Promise<void>;
}

/**
 * `hexmesh control` as a real process (killable, restartable on the same port and store) and
 * a local runtime joined to it with the admin token and a join token per sidecar.
 */
export async function startProcessControlMesh(
  prefix: string,
  runtimeOptions: (dir: string) => Partial<LocalProcessRuntimeOptions> = () => ({}),
): Promise<ProcessControlMesh> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cp = new ControlProcess(await freePort(), join(dir, 'data'));
  await cp.start();
  const token = await waitForBootstrapToken(credentialsFile(cp.dataDir), cp.url);
  const api = new ControlClient(cp.url, { token });
  const runtime = new LocalProcessRuntime({
    controlUrl: cp.url,
    token,
    joinToken: new JoinTokenIssuer(api, { ttlMs: 3_600_000 }).get,
    logDir: join(dir, 'logs'),
    healthPollMs: 250,
    ...runtimeOptions(dir),
  });
  return {
    dir,
    cp,
    token,
    api,
    runtime,
    async close(before) {
      if (!cp.running) await cp.start().catch(() => {});
      await before?.();
      await runtime.close();
      await api.destroy();
      await cp.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
