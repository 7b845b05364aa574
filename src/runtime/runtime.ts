/**
 * The runtime interface: what runs instances of services, each beside its own sidecar.
 * `LocalProcessRuntime` (child processes on this machine) is the first implementation;
 * rollouts drive any of them the same way — start the new revision's instances beside
 * the old ones, wait until they are healthy, then drain and destroy the old ones:
 *
 * ```ts
 * const fresh = await Promise.all(specs.map((s) => runtime.startInstance(s)));
 * await runtime.waitHealthy(fresh.map((h) => h.id), 60_000);
 * for (const old of previous) await runtime.stopInstance(old.id, { drain: true });
 * ```
 */
import type { ProcessStamp } from './processes.ts';

/** What to run: one instance of one service. Instances are immutable: a new revision is new instances. */
export interface InstanceSpec {
  /** Unique within the runtime; the catalog instance id. */
  id: string;
  service: string;
  namespace: string;
  /** Labels registered with the instance (`version` selects a revision). */
  labels: Readonly<Record<string, string>>;
  command: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd: string;
  /** The app's port; `auto` picks a free one. */
  port: number | 'auto';
  healthCheck?: { type: 'http'; path: string } | { type: 'tcp' } | { type: 'grpc' };
  serviceAccount?: string;
  restart?: { initialBackoffMs: number; maxBackoffMs: number };
}

/**
 * `starting` (sidecar, then app), `running`, `restarting` (waiting out a backoff),
 * `CrashLoop` (≥ 5 restarts in 60 s; restarts wait the maximum backoff), `stopping`, `stopped`.
 */
export type InstanceState = 'starting' | 'running' | 'restarting' | 'CrashLoop' | 'stopping' | 'stopped';

/** Catalog health as the instance's own sidecar reports it; `unknown` before it registered. */
export type InstanceHealth = 'passing' | 'warning' | 'critical' | 'unknown';

export interface InstanceInfo {
  id: string;
  service: string;
  namespace: string;
  version: string | undefined;
  /** The spec's labels (a rollout finds a revision's instances by its label). */
  labels?: Readonly<Record<string, string>>;
  state: InstanceState;
  health: InstanceHealth;
  /** Last check output from the catalog. */
  healthOutput?: string;
  appPort: number;
  inboundPort: number;
  outboundPort: number;
  adminPort: number;
  appPid: number | undefined;
  sidecarPid: number | undefined;
  /** Start time + boot id of appPid / sidecarPid: `hexmesh down` kills a pid only while they match. */
  appStamp?: ProcessStamp;
  sidecarStamp?: ProcessStamp;
  restarts: number;
  /** When the app last started (epoch ms). */
  startedAt: number | undefined;
  /** The app's log file. */
  logFile: string;
}

export interface InstanceHandle {
  readonly id: string;
  info(): InstanceInfo;
}

export type RuntimeEvent =
  | { type: 'state'; id: string; state: InstanceState }
  | { type: 'health'; id: string; health: InstanceHealth; output?: string }
  | { type: 'log'; id: string; line: string }
  | { type: 'exit'; id: string; process: 'app' | 'sidecar'; code: number | null; signal: string | null };

export interface StopOptions {
  /**
   * true: deregister (no new traffic), let the mesh notice, stop the app (SIGTERM, then
   * SIGKILL after the grace period), then its sidecar. false: kill both now.
   */
  drain: boolean;
  /** Grace period per process before SIGKILL (default 10 s). */
  graceMs?: number;
}

export interface Runtime {
  /** Start an instance (its sidecar first, then the app once the sidecar is ready). */
  startInstance(spec: InstanceSpec): Promise<InstanceHandle>;
  stopInstance(id: string, opts: StopOptions): Promise<void>;
  list(): InstanceInfo[];
  /** Resolves when every named instance is `passing` in the catalog; rejects after `timeoutMs`. */
  waitHealthy(ids: readonly string[], timeoutMs: number): Promise<void>;
  /** Subscribe to events; returns the unsubscribe function. */
  on(listener: (e: RuntimeEvent) => void): () => void;
  /** Stop every instance (drained) and release timers. Idempotent. */
  close(): Promise<void>;
}
