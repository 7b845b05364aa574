/**
 * One instance on this machine: its sidecar (`hexmesh proxy --control ...`) and its app,
 * both child processes. Start order: sidecar, wait for its /ready, then the app (so the
 * app's first outbound call already has a sidecar); the sidecar registers the instance and
 * runs its health check, so no traffic reaches the app before the check passes. A crashed
 * app is restarted under the RestartPolicy; a crashed sidecar takes its app down with it
 * and both restart.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { ControlClient } from '../cli/client/control-client.ts';
import { SERVICE_ACCOUNT_LABEL } from '../control/discovery/destination-views.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { JoinTokenSource } from './join-token-issuer.ts';
import { HEXMESH_BIN } from './paths.ts';
import { freePort } from './ports.ts';
import { spawnLines, terminate, type Spawned } from './processes.ts';
import { RestartPolicy } from './restart-policy.ts';
import type { Watchdog } from './watchdog.ts';
import type {
  InstanceHealth,
  InstanceInfo,
  InstanceSpec,
  InstanceState,
  RuntimeEvent,
  StopOptions,
} from './runtime.ts';

export interface LocalInstanceOptions {
  controlUrl: string;
  /** The runtime's API client (with its credentials): deregistration. */
  client: ControlClient;
  /** The sidecar's join token (its identity only); none: the sidecar joins without one. */
  joinToken?: JoinTokenSource;
  logDir: string;
  /** Kills the sidecar and app if the supervisor dies (watchdog.ts). */
  watchdog?: Watchdog;
  /** The sidecar keeps its last good config and certificate in `<cacheDir>/<id>` (`--cache-dir`). */
  cacheDir?: string;
  emit: (e: RuntimeEvent) => void;
  /** How long the app waits for its sidecar's workload certificate (default 15 s; with a join token only). */
  certificateTimeoutMs?: number;
  /** How long a sidecar may take to become ready (default 30 s). */
  sidecarReadyTimeoutMs?: number;
  /** Wait after deregistering before stopping the app, so every sidecar has dropped the endpoint (default 1 s). */
  deregisterSettleMs?: number;
}

/** The environment every app gets (docs/runtime.md lists it). */
export function appEnvironment(
  spec: InstanceSpec,
  ports: { app: number; outbound: number; admin: number },
  controlUrl: string,
): Record<string, string> {
  const outbound = `127.0.0.1:${ports.outbound}`;
  return {
    HEXMESH_SERVICE: spec.service,
    HEXMESH_NAMESPACE: spec.namespace,
    HEXMESH_INSTANCE: spec.id,
    HEXMESH_OUTBOUND: outbound,
    HEXMESH_ADMIN: `127.0.0.1:${ports.admin}`,
    HEXMESH_CONTROL: controlUrl,
    HTTP_PROXY: `http://${outbound}`,
    http_proxy: `http://${outbound}`,
    NO_PROXY: 'localhost,127.0.0.1',
    no_proxy: 'localhost,127.0.0.1',
    PORT: String(ports.app),
  };
}

/**
 * Credentials the runtime's own environment may hold (the user's API token, a join token):
 * never inherited by apps and sidecars, which get only what is theirs.
 */
const PRIVATE_ENV = ['HEXMESH_TOKEN', 'HEXMESH_JOIN_TOKEN', 'HEXMESH_CREDENTIALS'];

function inheritedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of PRIVATE_ENV) delete env[k];
  return env;
}

/** The workload identity of an instance: its service account, by default its service's name. */
export function serviceAccountOf(spec: InstanceSpec): string {
  return spec.serviceAccount ?? spec.service;
}

export class LocalInstance {
  readonly spec: InstanceSpec;
  readonly #o: LocalInstanceOptions;
  readonly #policy: RestartPolicy;
  readonly #log: WriteStream;
  readonly #sidecarLog: WriteStream;
  #state: InstanceState = 'starting';
  #health: InstanceHealth = 'unknown';
  #healthOutput: string | undefined;
  #ports = { app: 0, inbound: 0, outbound: 0, admin: 0 };
  #app: Spawned | undefined;
  #sidecar: Spawned | undefined;
  #startedAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(spec: InstanceSpec, o: LocalInstanceOptions) {
    this.spec = spec;
    this.#o = o;
    this.#policy = new RestartPolicy({
      initialBackoffMs: spec.restart?.initialBackoffMs,
      maxBackoffMs: spec.restart?.maxBackoffMs,
    });
    this.#log = createWriteStream(join(o.logDir, `${spec.id}.log`), { flags: 'a' });
    this.#sidecarLog = createWriteStream(join(o.logDir, `${spec.id}.sidecar.log`), { flags: 'a' });
  }

  get id(): string {
    return this.spec.id;
  }

  info(): InstanceInfo {
    return {
      id: this.spec.id,
      service: this.spec.service,
      namespace: this.spec.namespace,
      version: this.spec.labels.version,
      labels: this.spec.labels,
      state: this.#state,
      health: this.#health,
      ...(this.#healthOutput !== undefined ? { healthOutput: this.#healthOutput } : {}),
      appPort: this.#ports.app,
      inboundPort: this.#ports.inbound,
      outboundPort: this.#ports.outbound,
      adminPort: this.#ports.admin,
      appPid: this.#app && !this.#app.done() ? this.#app.pid : undefined,
      sidecarPid: this.#sidecar && !this.#sidecar.done() ? this.#sidecar.pid : undefined,
      ...(this.#app && !this.#app.done() && this.#app.stamp ? { appStamp: this.#app.stamp } : {}),
      ...(this.#sidecar && !this.#sidecar.done() && this.#sidecar.stamp
        ? { sidecarStamp: this.#sidecar.stamp }
        : {}),
      restarts: this.#policy.restarts,
      startedAt: this.#startedAt,
      logFile: join(this.#o.logDir, `${this.spec.id}.log`),
    };
  }

  /** Allocate ports, start the sidecar, wait until it is ready, start the app. */
  async start(): Promise<void> {
    const s = this.spec;
    const [app, inbound, outbound, admin] = await Promise.all([
      s.port === 'auto' ? freePort() : Promise.resolve(s.port),
      freePort(),
      freePort(),
      freePort(),
    ]);
    this.#ports = { app, inbound, outbound, admin };
    await this.#startBoth();
  }

  setHealth(health: InstanceHealth, output: string | undefined): void {
    if (health === this.#health && output === this.#healthOutput) return;
    this.#health = health;
    this.#healthOutput = output;
    this.#o.emit({ type: 'health', id: this.id, health, ...(output !== undefined ? { output } : {}) });
  }

  async stop(opts: StopOptions): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearTimeout(this.#timer);
    this.#setState('stopping');
    const grace = opts.graceMs ?? 10_000;
    if (opts.drain) {
      // Stop the traffic first: with the instance out of the catalog every sidecar drops the endpoint.
      await this.#deregister();
      await new Promise((r) => setTimeout(r, this.#o.deregisterSettleMs ?? 1000));
      if (this.#app) await terminate(this.#app, grace);
      // SIGTERM: the sidecar closes its stream (lease revoked) and drains in-flight requests.
      if (this.#sidecar) await terminate(this.#sidecar, grace);
    } else {
      await Promise.all([this.#app && terminate(this.#app, 0), this.#sidecar && terminate(this.#sidecar, 0)]);
    }
    this.#setState('stopped');
    this.#line('stopped');
    await Promise.all([closeStream(this.#log), closeStream(this.#sidecarLog)]);
  }

  async #deregister(): Promise<void> {
    const s = this.spec;
    const path = `/v1/catalog/deregister/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.service)}/${encodeURIComponent(s.id)}`;
    try {
      await this.#o.client.request('PUT', path, { signal: AbortSignal.timeout(3000), accept: [404] });
    } catch (err) {
      // Either way the sidecar's SIGTERM revokes the lease; a refusal is worth a line, an
      // unreachable control plane (status 0, shutting down) is not.
      if ((err as { status?: number }).status) this.#line(`deregistering: ${(err as Error).message}`);
    }
  }

  #setState(state: InstanceState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#o.emit({ type: 'state', id: this.id, state });
  }

  /** A line of the app's output (or the runtime's own note) into the log file and the event stream. */
  #line(line: string): void {
    this.#log.write(`${line}\n`);
    this.#o.emit({ type: 'log', id: this.id, line });
  }

  async #startBoth(): Promise<void> {
    this.#setState(this.#policy.crashLooping ? 'CrashLoop' : 'starting');
    let joinToken: string | undefined;
    try {
      joinToken = await this.#o.joinToken?.(this.spec.namespace, serviceAccountOf(this.spec), this.spec.id);
    } catch (err) {
      this.#line(`cannot get a join token for the sidecar: ${(err as Error).message}`);
      this.#retryLater();
      return;
    }
    if (this.#stopping) return;
    const sidecar = this.#spawnSidecar(joinToken);
    this.#sidecar = sidecar;
    try {
      await this.#waitReady(sidecar);
    } catch (err) {
      // Its exit handler restarts it under the backoff, like any crash.
      this.#line(`sidecar not ready: ${(err as Error).message}`);
      await terminate(sidecar, 2000);
      return;
    }
    if (joinToken) await this.#waitCertificate(sidecar);
    if (this.#stopping) return;
    this.#spawnApp();
  }

  /**
   * With a join token, the app (and so its health check, and so traffic) waits for the
   * sidecar's workload certificate: a sidecar without one cannot terminate the mTLS its
   * peers already speak. Bounded: past the wait the instance runs anyway (its hops stay
   * plaintext until the certificate comes), with a line saying so.
   */
  async #waitCertificate(sc: Spawned): Promise<void> {
    const timeout = this.#o.certificateTimeoutMs ?? 15_000;
    const deadline = Date.now() + timeout;
    const url = `http://127.0.0.1:${this.#ports.admin}/metrics`;
    while (!this.#stopping && !sc.done()) {
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
        // Start-up only: the gauge is exported once the proxy holds a certificate.
        if (r.ok && (await r.text()).includes('\nhexmesh_cert_expiry_seconds ')) return;
      } catch {}
      if (Date.now() > deadline) {
        this.#line(
          `the sidecar has no workload certificate after ${timeout} ms (see ${this.spec.id}.sidecar.log); starting the app anyway, its hops stay plaintext until it gets one`,
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Start both again after the restart policy's backoff (nothing is running). */
  #retryLater(): void {
    if (this.#stopping) return;
    const d = this.#policy.exited();
    this.#setState(d.crashLoop ? 'CrashLoop' : 'restarting');
    this.#timer = setTimeout(() => {
      if (!this.#stopping) void this.#startBoth();
    }, d.delayMs);
  }

  #spawnSidecar(joinToken: string | undefined): Spawned {
    const s = this.spec;
    const p = this.#ports;
    const args = [
      HEXMESH_BIN,
      'proxy',
      '--control',
      this.#o.controlUrl,
      '--service',
      s.service,
      '--namespace',
      s.namespace,
      '--app-port',
      String(p.app),
      '--inbound',
      `127.0.0.1:${p.inbound}`,
      '--outbound',
      `127.0.0.1:${p.outbound}`,
      '--admin',
      `127.0.0.1:${p.admin}`,
      '--id',
      s.id,
      '--advertise',
      '127.0.0.1',
    ];
    if (this.#o.cacheDir) args.push('--cache-dir', join(this.#o.cacheDir, s.id));
    for (const [k, v] of Object.entries(s.labels)) args.push('--label', `${k}=${v}`);
    // The endpoint identity clients expect (docs/mtls.md) is the service name unless this says otherwise.
    if (s.serviceAccount && s.serviceAccount !== s.service && s.labels[SERVICE_ACCOUNT_LABEL] === undefined)
      args.push('--label', `${SERVICE_ACCOUNT_LABEL}=${s.serviceAccount}`);
    const hc = s.healthCheck;
    if (hc) args.push('--check', hc.type === 'http' ? `http:${hc.path}` : hc.type);
    // In the environment, not argv: argv is readable by every user of the machine (ps).
    const env = inheritedEnv();
    if (joinToken) env.HEXMESH_JOIN_TOKEN = joinToken;
    const sc = spawnLines(process.execPath, args, { cwd: s.cwd, env, watchdog: this.#o.watchdog }, (l) =>
      this.#sidecarLog.write(`${l}\n`),
    );
    void sc.exited.then((e) => this.#onSidecarExit(sc, e.code, e.signal));
    return sc;
  }

  async #waitReady(sc: Spawned): Promise<void> {
    const timeout = this.#o.sidecarReadyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeout;
    const url = `http://127.0.0.1:${this.#ports.admin}/ready`;
    while (!this.#stopping) {
      if (sc.done())
        throw new HexmeshError('HEXMESH_ERR_LISTEN', `sidecar of ${this.id} exited during start-up`);
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
        await r.body?.cancel();
        if (r.ok) return;
      } catch {}
      if (Date.now() > deadline)
        throw new HexmeshError(
          'HEXMESH_ERR_TIMEOUT',
          `sidecar of ${this.id} not ready after ${timeout} ms (${url})`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  #spawnApp(): void {
    const s = this.spec;
    const env = { ...inheritedEnv(), ...s.env, ...appEnvironment(s, this.#ports, this.#o.controlUrl) };
    // `node` is the Node.js running hexmesh: no PATH lookup, same version.
    const command = s.command === 'node' ? process.execPath : s.command;
    const app = spawnLines(command, s.args, { cwd: s.cwd, env, watchdog: this.#o.watchdog }, (l) =>
      this.#line(l),
    );
    this.#app = app;
    this.#policy.started();
    this.#startedAt = Date.now();
    if (!this.#policy.crashLooping) this.#setState('running');
    else this.#setState('CrashLoop');
    void app.exited.then((e) => this.#onAppExit(app, e.code, e.signal));
  }

  #onAppExit(app: Spawned, code: number | null, signal: string | null): void {
    this.#o.emit({ type: 'exit', id: this.id, process: 'app', code, signal });
    if (this.#stopping || app !== this.#app) return;
    const d = this.#policy.exited();
    this.#line(
      `exited (${signal ?? `code ${code}`}); restart ${d.restarts} in ${d.delayMs} ms${d.crashLoop ? ' [CrashLoop]' : ''}`,
    );
    this.#setState(d.crashLoop ? 'CrashLoop' : 'restarting');
    this.#timer = setTimeout(() => {
      if (this.#stopping) return;
      if (this.#sidecar && !this.#sidecar.done()) this.#spawnApp();
      else void this.#startBoth();
    }, d.delayMs);
  }

  #onSidecarExit(sc: Spawned, code: number | null, signal: string | null): void {
    this.#o.emit({ type: 'exit', id: this.id, process: 'sidecar', code, signal });
    if (this.#stopping || sc !== this.#sidecar) return;
    this.#line(`sidecar exited (${signal ?? `code ${code}`}); stopping the app to restart both`);
    const app = this.#app;
    this.#app = undefined;
    void (async () => {
      if (app) await terminate(app, 5000);
      if (this.#stopping) return;
      const d = this.#policy.exited();
      this.#setState(d.crashLoop ? 'CrashLoop' : 'restarting');
      this.#timer = setTimeout(() => {
        if (!this.#stopping) void this.#startBoth();
      }, d.delayMs);
    })();
  }
}

function closeStream(s: WriteStream): Promise<void> {
  return new Promise((r) => s.end(r));
}
