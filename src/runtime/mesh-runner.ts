/**
 * What `hexmesh up` does with a mesh file: start `hexmesh control` on its embedded store in
 * the mesh's data dir, apply the resources, start every instance on a Runtime, keep
 * `state.json` current (for `hexmesh ps` / `down`), and stop it all in order.
 *
 * Crash safety (docs/runtime.md): every child is named to a watchdog (watchdog.ts) that
 * kills it if the supervisor dies; a start after a supervisor that died first kills what the
 * previous state file still names (pid + start time) and drops its catalog entries; a
 * service a rollout already promoted starts its stable revision (rollout/stable-revision.ts).
 *
 * Credentials (docs/runtime.md): the runner uses the bootstrap admin token the control plane
 * writes to `<data-dir>/credentials.json` for its own calls (apply, catalog, rollouts); each
 * sidecar gets only a join token for its own workload identity.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { ControlApiError, ControlClient } from '../cli/client/control-client.ts';
import { problemLine } from '../cli/client/command-support.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import { credentialsFile, waitForBootstrapToken } from './bootstrap-token.ts';
import { JoinTokenIssuer } from './join-token-issuer.ts';
import { LocalProcessRuntime } from './local-process-runtime.ts';
import { RolloutController } from '../rollout/rollout-controller.ts';
import { rolloutKeys } from '../rollout/rollout-status.ts';
import { withStableRevisions } from '../rollout/stable-revision.ts';
import type { MeshFile, MeshService } from './mesh-file.ts';
import { HEXMESH_BIN, meshPaths } from './paths.ts';
import {
  isRunning,
  processStamp,
  spawnLines,
  terminate,
  type ProcessStamp,
  type Spawned,
} from './processes.ts';
import { killRecorded, liveSupervisor, readMeshState } from './state-file.ts';
import { Watchdog } from './watchdog.ts';
import type { InstanceInfo, InstanceSpec, RuntimeEvent } from './runtime.ts';

/** The contents of `<dataDir>/state.json`. */
export interface MeshState {
  file: string;
  phase: 'starting' | 'running' | 'stopping' | 'failed';
  error?: string;
  supervisorPid: number;
  controlUrl: string;
  controlPid: number | undefined;
  /** Start time + boot id of supervisorPid / controlPid (see ProcessStamp). */
  supervisorStamp?: ProcessStamp;
  controlStamp?: ProcessStamp;
  /** The watchdog that kills every child if the supervisor dies (watchdog.ts). */
  watchdogPid?: number;
  watchdogStamp?: ProcessStamp;
  startedAt: number;
  updatedAt: number;
  instances: InstanceInfo[];
}

export interface MeshRunnerOptions {
  /** Overrides `controlPlane.listen` (tests: `127.0.0.1:0`). */
  controlListen?: string;
  /** Overrides the data dir (store, logs, state). */
  dataDir?: string;
  /** Every line of every app, prefixed `[instance]`. */
  onLog?: (line: string) => void;
  deregisterSettleMs?: number;
  /** Lifetime of the sidecars' join tokens (default 7 days: DEFAULT_JOIN_TOKEN_TTL_MS). */
  joinTokenTtlMs?: number;
}

/** Instance ids: `<service>-<n>`, or `<service>-<version>-<n>` when several entries share a name. */
export function instanceSpecs(mesh: MeshFile): InstanceSpec[] {
  const count = new Map<string, number>();
  for (const s of mesh.services) count.set(s.name, (count.get(s.name) ?? 0) + 1);
  const out: InstanceSpec[] = [];
  for (const s of mesh.services) {
    const stem = (count.get(s.name) ?? 0) > 1 && s.version ? `${s.name}-${s.version}` : s.name;
    for (let n = 1; n <= s.replicas; n++) out.push(specOf(s, `${stem}-${n}`));
  }
  return out;
}

function specOf(s: MeshService, id: string): InstanceSpec {
  return {
    id,
    service: s.name,
    namespace: s.namespace,
    labels: s.labels,
    command: s.command,
    args: s.args,
    env: s.env,
    cwd: s.cwd,
    port: s.port,
    ...(s.healthCheck ? { healthCheck: s.healthCheck } : {}),
    ...(s.serviceAccount ? { serviceAccount: s.serviceAccount } : {}),
    restart: { initialBackoffMs: s.restart.initialBackoff, maxBackoffMs: s.restart.maxBackoff },
  };
}

export class MeshRunner {
  readonly mesh: MeshFile;
  readonly paths: ReturnType<typeof meshPaths>;
  readonly #o: MeshRunnerOptions;
  #control: Spawned | undefined;
  #watchdog: Watchdog | undefined;
  /** The API as the bootstrap admin. */
  #client: ControlClient | undefined;
  #joinTokens: JoinTokenIssuer | undefined;
  #runtime: LocalProcessRuntime | undefined;
  /** Rollouts need the runtime, so they are run here (docs/rollouts.md). */
  #rollouts: RolloutController | undefined;
  #state: MeshState;
  #writeTimer: NodeJS.Timeout | undefined;
  #refresh: NodeJS.Timeout | undefined;
  #stopped: Promise<void> | undefined;

  constructor(mesh: MeshFile, o: MeshRunnerOptions = {}) {
    this.mesh = mesh;
    this.#o = o;
    this.paths = meshPaths(o.dataDir ?? mesh.controlPlane.dataDir);
    this.#state = {
      file: mesh.file,
      phase: 'starting',
      supervisorPid: process.pid,
      supervisorStamp: processStamp(process.pid),
      controlUrl: '',
      controlPid: undefined,
      startedAt: Date.now(),
      updatedAt: Date.now(),
      instances: [],
    };
  }

  get runtime(): LocalProcessRuntime {
    if (!this.#runtime) throw new HexmeshError('HEXMESH_ERR_INTERNAL', 'the mesh is not started');
    return this.#runtime;
  }

  get controlUrl(): string {
    return this.#state.controlUrl;
  }

  /** The credentials file of the control plane (`--credentials` for the CLI verbs). */
  get credentialsFile(): string {
    return credentialsFile(this.paths.dataDir);
  }

  /** Start everything; resolves once every instance was started (not yet healthy: see waitHealthy). */
  async start(): Promise<void> {
    // The data dir holds the store and the CA keys: the owner's alone (hexmesh control checks it).
    mkdirSync(this.paths.dataDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.paths.logDir, { recursive: true });
    const previous = await this.#reapPrevious();
    // The pid, then its stamp: `hexmesh down` signals the supervisor only while both match.
    const own = processStamp(process.pid);
    writeFileSync(this.paths.pidFile, `${process.pid}\n${own ? JSON.stringify(own) : ''}\n`);
    this.#watchdog = new Watchdog();
    this.#state.watchdogPid = this.#watchdog.pid;
    if (this.#watchdog.pid) this.#state.watchdogStamp = processStamp(this.#watchdog.pid);
    this.#write();
    try {
      this.#state.controlUrl = await this.#startControl();
      this.#state.controlPid = this.#control?.pid;
      this.#state.controlStamp = this.#control?.stamp;
      this.#write();
      const control = this.#control;
      const token = await waitForBootstrapToken(this.credentialsFile, this.#state.controlUrl, {
        isAlive: () => !control?.done(),
      });
      const client = new ControlClient(this.#state.controlUrl, { token });
      this.#client = client;
      this.#joinTokens = new JoinTokenIssuer(client, {
        ...(this.#o.joinTokenTtlMs !== undefined ? { ttlMs: this.#o.joinTokenTtlMs } : {}),
      });
      await this.#apply(client);
      const specs = await withStableRevisions(client, instanceSpecs(this.mesh), (l) => this.#o.onLog?.(l));
      await this.#forgetStale(client, [...specs, ...(previous?.instances ?? [])]);
      // No other supervisor runs from this data dir (up refuses to start beside a live one):
      // a lease left by one that died need not be waited out.
      await client.kvDelete(rolloutKeys.owner).catch(() => {});
      const runtime = new LocalProcessRuntime({
        controlUrl: this.#state.controlUrl,
        token,
        watchdog: this.#watchdog,
        cacheDir: join(this.paths.dataDir, 'cache'),
        joinToken: this.#joinTokens.get,
        logDir: this.paths.logDir,
        ...(this.#o.deregisterSettleMs !== undefined
          ? { deregisterSettleMs: this.#o.deregisterSettleMs }
          : {}),
      });
      this.#runtime = runtime;
      runtime.on((e) => this.#onEvent(e));
      await Promise.all(specs.map((s) => runtime.startInstance(s)));
      this.#rollouts = new RolloutController({
        controlUrl: this.#state.controlUrl,
        token,
        runtime,
        ...(this.#o.onLog ? { log: this.#o.onLog } : {}),
      });
      await this.#rollouts.start();
      this.#state.phase = 'running';
      this.#write();
      // ps shows health and uptime from this file.
      this.#refresh = setInterval(() => this.#write(), 2000);
      this.#refresh.unref();
    } catch (err) {
      this.#state.phase = 'failed';
      this.#state.error = (err as Error).message;
      this.#write();
      await this.stop();
      throw err;
    }
  }

  /** Every instance passing in the catalog, or a timeout error naming the ones that are not. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    await this.runtime.waitHealthy(
      this.runtime.list().map((i) => i.id),
      timeoutMs,
    );
    this.#write();
  }

  /** The mesh file's smoke test: GET its path on its service's first instance; returns the body. */
  async smokeTest(): Promise<{ ok: boolean; status: number; body: string } | undefined> {
    const t = this.mesh.smokeTest;
    if (!t) return undefined;
    const inst = this.runtime.list().find((i) => i.service === t.service);
    if (!inst) return { ok: false, status: 0, body: `no instance of ${t.service}` };
    const r = await fetch(`http://127.0.0.1:${inst.appPort}${t.path}`, {
      signal: AbortSignal.timeout(15_000),
    });
    return { ok: r.ok, status: r.status, body: await r.text() };
  }

  /** Stop in order: instances (deregister, app, sidecar), then the control plane. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      clearInterval(this.#refresh);
      if (this.#state.phase !== 'failed') this.#state.phase = 'stopping';
      this.#write();
      await this.#rollouts?.close();
      await this.#runtime?.close();
      // No sidecar is left to use them.
      await this.#joinTokens?.revokeAll();
      await this.#client?.destroy();
      if (this.#control) await terminate(this.#control, 10_000);
      this.#watchdog?.close();
      clearTimeout(this.#writeTimer);
      if (this.#state.phase === 'failed') this.#write();
      else rmSync(this.paths.stateFile, { force: true });
      rmSync(this.paths.pidFile, { force: true });
    })();
    return this.#stopped;
  }

  #onEvent(e: RuntimeEvent): void {
    if (e.type === 'log') this.#o.onLog?.(`[${e.id}] ${e.line}`);
    else if (e.type === 'state' || e.type === 'health') {
      if (e.type === 'state' && (e.state === 'CrashLoop' || e.state === 'restarting'))
        this.#o.onLog?.(`[${e.id}] state ${e.state}`);
      // Coalesce bursts of events into one write.
      this.#writeTimer ??= setTimeout(() => {
        this.#writeTimer = undefined;
        this.#write();
      }, 100);
    }
  }

  /** Atomic write (tmp + rename): `ps` never reads half a file. */
  #write(): void {
    this.#state.updatedAt = Date.now();
    if (this.#runtime) this.#state.instances = this.#runtime.list();
    const tmp = `${this.paths.stateFile}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, `${JSON.stringify(this.#state, null, 2)}\n`);
      renameSync(tmp, this.paths.stateFile);
    } catch {}
  }

  async #startControl(): Promise<string> {
    const listen = this.#o.controlListen ?? this.mesh.controlPlane.listen;
    const log = createWriteStream(join(this.paths.logDir, 'control.log'), { flags: 'a' });
    let url: string | undefined;
    const cp = spawnLines(
      process.execPath,
      [HEXMESH_BIN, 'control', '--listen', listen, '--data-dir', this.paths.dataDir],
      { env: process.env, watchdog: this.#watchdog },
      (line) => {
        log.write(`${line}\n`);
        url ??= /listening on (http:\/\/\S+)/.exec(line)?.[1];
      },
    );
    void cp.exited.then(() => log.end());
    this.#control = cp;
    const deadline = Date.now() + 30_000;
    while (!url) {
      if (cp.done())
        throw new HexmeshError(
          'HEXMESH_ERR_LISTEN',
          `hexmesh control exited during start-up (is ${listen} in use? see ${join(this.paths.logDir, 'control.log')})`,
        );
      if (Date.now() > deadline)
        throw new HexmeshError('HEXMESH_ERR_TIMEOUT', 'hexmesh control did not start within 30 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    return url;
  }

  async #apply(client: ControlClient): Promise<void> {
    if (this.mesh.resources.length === 0) return;
    try {
      await client.request('POST', '/v1/apply', {
        body: this.mesh.resources,
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      if (!(err instanceof ControlApiError)) throw err;
      throw new HexmeshError(
        err.code === 'HEXMESH_ERR_CONFIG_INVALID' ? 'HEXMESH_ERR_CONFIG_INVALID' : 'HEXMESH_ERR_INTERNAL',
        [`applying the mesh file's resources: ${err.message}`, ...err.problems.map(problemLine)].join('\n'),
        { cause: err },
      );
    }
  }

  /**
   * What a supervisor that died left: its watchdog normally killed every child already;
   * whatever the previous state file still names and is still the process it started
   * (a watchdog killed too, a child spawned in the instant before the crash) is killed now,
   * so no app keeps running unseen by `ps` and `down`. Nothing is adopted: a new supervisor
   * cannot take over another process's pipes (logs) or exit status. Returns that state.
   */
  async #reapPrevious(): Promise<MeshState | undefined> {
    const previous = readMeshState(this.paths.dataDir);
    if (!previous || liveSupervisor(this.paths.dataDir) !== undefined) return previous;
    const { killed, skipped } = killRecorded(previous);
    if (killed.length)
      this.#o.onLog?.(
        `[up] killed ${killed.length} process(es) a previous supervisor (pid ${previous.supervisorPid}) left running`,
      );
    if (skipped.length) this.#o.onLog?.(`[up] left alone (pid reused): ${skipped.join(', ')}`);
    // Their ports and the store are free once they are gone.
    const deadline = Date.now() + 5000;
    while (killed.some(isRunning) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return previous;
  }

  /** A previous run killed without `down` leaves its instances in the store until their leases lapse: drop them now. */
  async #forgetStale(
    client: ControlClient,
    specs: readonly Pick<InstanceSpec, 'id' | 'namespace' | 'service'>[],
  ): Promise<void> {
    await Promise.all(
      specs.map(async (s) => {
        try {
          await client.request(
            'PUT',
            `/v1/catalog/deregister/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.service)}/${encodeURIComponent(s.id)}`,
            { signal: AbortSignal.timeout(3000), accept: [404] },
          );
        } catch {}
      }),
    );
  }
}
