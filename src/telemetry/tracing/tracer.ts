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
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_NAMESPACE } from '@opentelemetry/semantic-conventions';
import type { ProxySettings } from '../../config/proxy-config.ts';

export type TracingSettings = NonNullable<ProxySettings['tracing']>;

/** Batch export period; spans reach the collector within about this long. */
const EXPORT_DELAY_MS = 1000;
/** Spans queued while the collector is slow or down; more are dropped (bounded memory). */
const MAX_QUEUE = 2048;

/**
 * Holds the tracer in force; `configure()` on every config snapshot swaps it when the
 * tracing settings changed. `tracer` is undefined while tracing is off, which is the one
 * check the tracing layer makes per request.
 */
export class Tracing {
  tracer: Tracer | undefined;
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
    if (settings === undefined) return;
    const exporter = new OTLPTraceExporter({ url: settings.endpoint });
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAME]: settings.serviceName ?? this.service,
        [ATTR_SERVICE_NAMESPACE]: this.namespace,
      }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRate) }),
      spanProcessors: [
        new BatchSpanProcessor(exporter, {
          scheduledDelayMillis: EXPORT_DELAY_MS,
          maxQueueSize: MAX_QUEUE,
          maxExportBatchSize: 512,
        }),
      ],
    });
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
