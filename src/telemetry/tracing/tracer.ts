/**
 * The proxy's tracer: an OpenTelemetry SDK tracer provider of its own (never the global
 * one, so an embedding process and several proxies in one test process do not share state),
 * exporting OTLP/HTTP JSON through a BatchSpanProcessor.
 *
 * Sampling is parent-based (as Envoy and Linkerd): a request that arrives with a sampled
 * context is traced, one with a not-sampled context is not, and only new traces are sampled
 * at `sampleRate`. Default rate 1 % (as Istio's default `sampling: 1.0` percent), so turning
 * tracing on in a busy mesh does not flood the collector.
 */
import type { Tracer } from '@opentelemetry/api';
import type { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import type { ProxySettings } from '../../config/proxy-config.ts';

/** The OpenTelemetry module, loaded the first time tracing is turned on. */
export type Otel = typeof import('./otel.ts');

export type TracingSettings = NonNullable<ProxySettings['tracing']>;

/**
 * Holds the tracer in force; `configure()` on every config snapshot swaps it when the
 * tracing settings changed. `tracer` is undefined while tracing is off, which is the one
 * check the tracing layer makes per request.
 *
 * OpenTelemetry is loaded (dynamic import) the first time tracing is turned on, so the
 * tracer is in force once `ready` resolves (the proxy awaits it before it listens; a reload
 * that turns tracing on takes effect a few milliseconds later).
 */
export class Tracing {
  tracer: Tracer | undefined;
  /** The OpenTelemetry API values; set before `tracer` is. */
  otel: Otel | undefined;
  /** Resolves when the last `configure()` is in force. */
  ready: Promise<void> = Promise.resolve();
  #provider: BasicTracerProvider | undefined;
  #key = '';
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(
    private readonly service: string,
    private readonly namespace: string,
  ) {}

  /** Apply the `proxy.tracing` settings of a snapshot (undefined: off). */
  configure(settings: TracingSettings | undefined): void {
    if (this.#closed) return;
    const key = settings === undefined ? '' : JSON.stringify(settings);
    if (key === this.#key) return;
    this.#key = key;
    const old = this.#provider;
    this.#provider = undefined;
    this.tracer = undefined;
    // Flush what the old provider still holds; its exporter keeps its own endpoint.
    if (old !== undefined) void old.shutdown().catch(() => {});
    if (settings === undefined) {
      this.ready = Promise.resolve();
      return;
    }
    if (this.otel !== undefined) {
      this.#start(this.otel, settings);
      this.ready = Promise.resolve();
      return;
    }
    this.ready = import('./otel.ts').then((otel) => {
      this.otel = otel;
      // Still the settings in force (no later configure() or close() while loading)?
      if (!this.#closed && this.#key === key) this.#start(otel, settings);
    });
  }

  #start(otel: Otel, settings: TracingSettings): void {
    this.#provider = otel.createProvider(settings, this.service, this.namespace);
    this.tracer = this.#provider.getTracer('hexmesh-proxy');
  }

  /** Export what is queued now. */
  async flush(): Promise<void> {
    await this.#provider?.forceFlush();
  }

  /** Flush and stop. Idempotent. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    const p = this.#provider;
    this.#provider = undefined;
    this.tracer = undefined;
    this.#closing = p ? p.shutdown().catch(() => {}) : Promise.resolve();
    return this.#closing;
  }
}
