/**
 * The proxy's end of the discovery stream (docs/config-distribution.md): says hello,
 * subscribes lazily to the destinations the app calls, applies each snapshot and delta
 * (acking, or nacking with the reason while the last good config keeps serving), reports
 * the app's health, and, when the control plane goes away, keeps serving and reconnects
 * with jittered backoff to any of the configured control planes, resyncing in one snapshot.
 */
import type { ConnectionOptions } from 'node:tls';
import { WebSocket, type RawData } from 'ws';
import type { ProxyConfig } from '../../config/proxy-config.ts';
import {
  CLOSE,
  DISCOVERY_PATH,
  LIMITS,
  type HealthStatus,
  type NodeInfo,
} from '../../control/discovery/protocol.ts';
import { parseAuthority } from '../route/authority.ts';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { ConfigState, type DeltaMessage, type SnapshotMessage } from './config-state.ts';

export interface ControlClientOptions {
  /** Control plane base URLs (`http://host:port`), tried in turn. */
  urls: readonly string[];
  /** Credential for the discovery upgrade (docs/api-security.md): a join token or an API token. */
  token?: string;
  /**
   * TLS for an `https://` control plane, asked at every connection (the workload certificate
   * renews): server verification and, once there is one, the client certificate. When a
   * client certificate is presented the token is not sent: mTLS authenticates the stream,
   * so a reconnect works after the join token expired.
   */
  tls?: (url: string) => ConnectionOptions | undefined;
  /** This proxy, as registered in the catalog. */
  node: NodeInfo;
  /** The `proxy:` settings every config is built with. */
  settings: Record<string, unknown>;
  /** Put a config in force; throw to refuse it (the proxy's `apply`). */
  apply(config: ProxyConfig): void;
  /**
   * Told of each refused version (an invalid snapshot, or `apply` threw), so the proxy can show
   * the refusal until a good version is in force.
   */
  onRefused?(version: number, error: string): void;
  /** How long a request for an unknown destination waits for its snapshot. Default 3 s. */
  subscribeTimeout?: number;
  backoff?: BackoffOptions;
  /** Cut a stream on which the control plane sent nothing (not even a ping) for this long. Default 30 s. */
  silenceTimeout?: number;
  maxSubscriptions?: number;
  /**
   * A config was put in force: what it was built from, for `--cache-dir` (last-good-cache.ts).
   * Not called for the config `startFrom` put in force.
   */
  onApplied?: (state: SnapshotMessage) => void;
  log?: (line: string) => void;
  random?: () => number;
}

interface Pending {
  promise: Promise<boolean>;
  resolve(known: boolean): void;
  timer: NodeJS.Timeout;
}

export class ControlClient {
  readonly #opts: ControlClientOptions;
  readonly #state = new ConfigState();
  /** Destinations subscribed so far (resent in every hello). */
  readonly #subscribed = new Set<string>();
  /** Subscriptions the server confirmed (a destination in here but not in `#known` does not exist). */
  #covered = new Set<string>();
  /** Service keys in the config in force. */
  #known = new Set<string>();
  readonly #pending = new Map<string, Pending>();
  readonly #toSend: string[] = [];
  #ws: WebSocket | undefined;
  #attempt = 0;
  #urlIndex = 0;
  #reconnect: NodeJS.Timeout | undefined;
  #silence: NodeJS.Timeout | undefined;
  #status: { status: HealthStatus; output?: string } | undefined;
  #closed = false;
  /** #update is putting a saved config in force (startFrom): not acked, not saved again. */
  #fromSaved = false;
  #firstApplied: () => void = () => {};
  /** Resolves when the first config from the control plane is in force. */
  readonly firstConfig: Promise<void>;
  /** Version of the config in force (0 before the first). */
  applied = 0;
  /** The last refusal, if any (cleared by the next successful update). */
  lastError: string | undefined;
  /** Reconnections so far (for tests and the admin page). */
  connects = 0;

  constructor(opts: ControlClientOptions) {
    if (opts.urls.length === 0) throw new Error('control client: at least one control plane URL is needed');
    this.#opts = opts;
    this.firstConfig = new Promise((r) => (this.#firstApplied = r));
  }

  get connected(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.#connect();
  }

  /**
   * Put a saved config in force while the control plane has sent none (a restart while it
   * is unreachable): its subscriptions are asked again on the next hello, and the first
   * snapshot replaces it. Returns false if a config is already in force or it does not build.
   */
  startFrom(saved: SnapshotMessage): boolean {
    if (this.applied !== 0 || this.#closed) return false;
    for (const k of saved.subscriptions ?? []) this.#subscribed.add(k);
    this.#state.replace(saved);
    this.#covered = new Set(saved.subscriptions ?? []);
    this.#fromSaved = true;
    this.#update(saved.version);
    this.#fromSaved = false;
    return this.applied !== 0;
  }

  #connect(): void {
    if (this.#closed) return;
    const base = this.#opts.urls[this.#urlIndex % this.#opts.urls.length];
    const url = new URL(DISCOVERY_PATH, base.replace(/^http/, 'ws'));
    const tls = url.protocol === 'wss:' ? this.#opts.tls?.(url.href) : undefined;
    const token = tls?.cert ? undefined : this.#opts.token;
    const ws = new WebSocket(url, {
      maxPayload: LIMITS.maxServerMessageBytes,
      handshakeTimeout: 5000,
      ...tls,
      ...(token && { headers: { authorization: `Bearer ${token}` } }),
    });
    this.#ws = ws;
    ws.on('open', () => {
      this.#attempt = 0;
      this.connects++;
      this.#heard();
      // One hello carries every subscription, so a reconnect resyncs in one snapshot and the
      // config in force is never replaced by a partial one.
      this.#send({
        type: 'hello',
        node: this.#opts.node,
        ...(this.#subscribed.size ? { services: [...this.#subscribed] } : {}),
      });
      if (this.#status) this.#send({ type: 'status', ...this.#status });
    });
    ws.on('message', (data) => this.#onMessage(data));
    ws.on('ping', () => this.#heard());
    ws.on('error', (err) => this.#opts.log?.(`control plane ${base}: ${err.message}`));
    ws.on('close', (code, reason) => {
      if (this.#ws === ws) this.#ws = undefined;
      clearTimeout(this.#silence);
      if (this.#closed) return;
      if (code !== 1006 || reason.length)
        this.#opts.log?.(`control plane ${base} closed the stream: ${code} ${reason.toString()}`);
      // Keep serving with the config in force; try the next control plane after a backoff.
      this.#urlIndex++;
      const delay = backoffDelay(this.#attempt++, this.#opts.backoff, this.#opts.random);
      this.#reconnect = setTimeout(
        () => this.#connect(),
        code === CLOSE.replaced ? Math.max(delay, 1000) : delay,
      );
    });
  }

  /** The control plane is alive: re-arm the silence timer. */
  #heard(): void {
    clearTimeout(this.#silence);
    const ws = this.#ws;
    this.#silence = setTimeout(() => ws?.terminate(), this.#opts.silenceTimeout ?? 30_000);
    this.#silence.unref();
  }

  #send(msg: unknown): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(msg));
  }

  #onMessage(data: RawData): void {
    this.#heard();
    let msg: { type?: string; message?: string };
    try {
      msg = JSON.parse(data.toString()) as typeof msg;
    } catch {
      this.#opts.log?.('control plane sent invalid JSON; reconnecting');
      this.#ws?.close(CLOSE.invalidPayload, 'invalid JSON');
      return;
    }
    if (msg.type === 'snapshot') {
      const m = msg as unknown as SnapshotMessage;
      this.#state.replace(m);
      this.#covered = new Set(m.subscriptions ?? []);
      this.#update(m.version);
    } else if (msg.type === 'delta') {
      const m = msg as unknown as DeltaMessage;
      this.#state.apply(m);
      this.#update(m.version);
    } else if (msg.type === 'error') this.#opts.log?.(`control plane: ${msg.message}`);
  }

  /** Build and apply the desired state; ack or nack; answer waiting requests. */
  #update(version: number): void {
    try {
      const config = this.#state.build(this.#opts.settings);
      this.#opts.apply(config);
      this.applied = version;
      this.lastError = undefined;
      this.#known = new Set(config.services.map((s) => `${s.name}.${s.namespace}`));
      if (!this.#fromSaved) {
        this.#send({ type: 'ack', version });
        this.#opts.onApplied?.({
          version,
          services: [...this.#state.services.values()],
          resources: [...this.#state.resources.values()],
          subscriptions: [...this.#subscribed],
        });
      }
      this.#firstApplied();
    } catch (err) {
      const error = (err as Error).message ?? String(err);
      this.lastError = error;
      this.#opts.onRefused?.(version, error);
      this.#opts.log?.(`refused update ${version}, keeping version ${this.applied}: ${error}`);
      this.#send({
        type: 'nack',
        version,
        error: error.length > 4000 ? `${error.slice(0, 3997)}...` : error,
      });
    }
    for (const [key, p] of this.#pending)
      if (this.#known.has(key)) this.#settle(key, p, true);
      else if (this.#covered.has(key) && !this.#state.services.has(key)) this.#settle(key, p, false);
  }

  #settle(key: string, p: Pending, known: boolean): void {
    clearTimeout(p.timer);
    this.#pending.delete(key);
    p.resolve(known);
  }

  /**
   * Lazy subscription: make sure the destination named by `authority` is known. Resolves true
   * once a config naming it is in force, false if it does not exist (or no answer came within
   * `subscribeTimeout`, e.g. while the control plane is away).
   */
  ensure(authority: string): Promise<boolean> {
    const ns = (this.#opts.node.namespace ?? 'default') as string;
    const t = parseAuthority(authority, ns);
    if (!t) return Promise.resolve(false);
    const key = `${t.name}.${t.namespace}`;
    if (this.#known.has(key)) return Promise.resolve(true);
    const p = this.#pending.get(key);
    if (p) return p.promise;
    if (this.#subscribed.has(key)) {
      // Already asked: the control plane says it does not exist (deltas bring it if it appears).
      if (this.#covered.has(key) || !this.connected) return Promise.resolve(false);
    } else {
      if (this.#subscribed.size >= (this.#opts.maxSubscriptions ?? LIMITS.maxSubscriptions))
        return Promise.resolve(false);
      this.#subscribed.add(key);
      // Batch the names asked for in one tick into one message.
      if (this.#toSend.push(key) === 1)
        queueMicrotask(() => {
          const services = this.#toSend.splice(0);
          if (services.length) this.#send({ type: 'subscribe', services });
        });
    }
    let resolve!: (known: boolean) => void;
    const promise = new Promise<boolean>((r) => (resolve = r));
    const timer = setTimeout(() => {
      const cur = this.#pending.get(key);
      if (cur) this.#settle(key, cur, false);
    }, this.#opts.subscribeTimeout ?? 3000);
    this.#pending.set(key, { promise, resolve, timer });
    return promise;
  }

  /** Report the app's health (sent now if connected, and again after every reconnect). */
  reportStatus(status: HealthStatus, output?: string): void {
    this.#status = { status, ...(output !== undefined ? { output: output.slice(0, 4000) } : {}) };
    this.#send({ type: 'status', ...this.#status });
  }

  /**
   * Leave: a clean close (1000) deregisters the instance at once, so other proxies stop
   * sending to it while this one drains. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnect);
    clearTimeout(this.#silence);
    for (const [key, p] of this.#pending) this.#settle(key, p, false);
    const ws = this.#ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, 'proxy shutting down');
    });
  }
}
